"""A web page to try the restorers in the browser: upload, restore, compare, download.

    python app.py                                   # the released models, on 127.0.0.1:7860
    python app.py --config configs/demo.py --unet_ckpt runs/demo     # your model, offline
    python app.py --host 0.0.0.0 --port 8080        # reachable from other machines

Requests run the `sample.py` job (same reader, limits and messages) on restorers kept
warm per model and dtype, one request at a time. Released weights are downloaded into
--weights_dir on first use, as by `sample.py`.
"""
import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from resshift_jax import config_file, folders
from resshift_jax.releases import CHECKPOINTS

config_file.DEFINE_config_file(
    "config", "configs/*.py of your own model (added to the menu, first); "
    "default: only the released models", lock_config=False)
flags.DEFINE_string("unet_ckpt", None, "with --config: UNet weights (a released name, .pth, "
                    ".safetensors or a training workdir); default the config's")
flags.DEFINE_string("vq_ckpt", None, "with --config: autoencoder weights; default the config's")
flags.DEFINE_bool("released", True, "offer the released models too (with --config)")
flags.DEFINE_string("weights_dir", "./weights", "where released weights are kept / downloaded")
flags.DEFINE_string("host", "127.0.0.1", "address to listen on (0.0.0.0: every interface)")
flags.DEFINE_integer("port", 7860, "port to listen on", lower_bound=0, upper_bound=65535)
flags.DEFINE_integer("max_upload_mb", 64, "refuse uploads larger than this", lower_bound=1)
flags.DEFINE_integer("cache_models", 2, "restorers (model, dtype) kept warm", lower_bound=1)
flags.DEFINE_float("max_output_megapixels", 256.0, "refuse images whose output is larger")
flags.register_validator("max_output_megapixels", lambda value: value > 0,
                         "--max_output_megapixels must be positive")
flags.DEFINE_string("compilation_cache", None,
                    "persistent XLA compilation cache folder (a restart does not recompile)")
FLAGS = flags.FLAGS


def check_args() -> None:
    """FolderError or ValueError naming the flag: weights without --config or not found, a
    compilation cache that is a file or read-only."""
    for flag in ("unet_ckpt", "vq_ckpt"):
        spec = FLAGS[flag].value
        if spec and FLAGS.config is None:
            raise ValueError(f"--{flag} is for your own model: give its --config too")
        if spec and spec not in CHECKPOINTS and not pathlib.Path(spec).expanduser().exists():
            raise ValueError(f"--{flag} {spec}: no such file or folder (nor a released name: "
                             f"{', '.join(CHECKPOINTS)})")
    if FLAGS.compilation_cache:
        folders.check_writable(FLAGS.compilation_cache, "--compilation_cache folder")


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:  # no log line of JAX's backend probing
        logging.set_verbosity(logging.WARNING)
    try:
        check_args()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if FLAGS.compilation_cache:
        import jax
        jax.config.update("jax_compilation_cache_dir", FLAGS.compilation_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    from resshift_jax import webapp, webui

    models = {}
    if FLAGS.config is not None:
        name = f"yours: {config_flags.get_config_filename(FLAGS['config'])}"
        models.update(webapp.custom_model(FLAGS.config, FLAGS.unet_ckpt, FLAGS.vq_ckpt, name))
    if FLAGS.config is None or FLAGS.released:
        models.update(webapp.released_models())
    engine = webapp.Engine(models, weights_dir=FLAGS.weights_dir,
                           cache_size=FLAGS.cache_models,
                           max_output_megapixels=FLAGS.max_output_megapixels)
    try:
        webui.serve(engine, host=FLAGS.host, port=FLAGS.port,
                    max_file_size=f"{FLAGS.max_upload_mb}mb")
    except OSError:  # gradio's "Cannot find empty port", whichever of the two it is
        print(f"error: cannot listen on {FLAGS.host}:{FLAGS.port}: the port is taken or the "
              "host is not an address of this machine", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=config_file.parse_flags)
