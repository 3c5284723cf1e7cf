"""Restore images with ResShift: the reference's `inference_resshift.py`, compiled with JAX.

    python sample.py -i LQ_DIR -o OUT_DIR --task realsr --version v3
    python sample.py -i LQ_DIR -o OUT_DIR --task realsr --version sinsr   # SinSR: one step
    python sample.py -i faces/ -o out/ --task inpaint_face --mask_path masks/
    python sample.py -i img.png -o out/ --config configs/my_model.py \
        --unet_ckpt my_unet.safetensors --vq_ckpt weights/autoencoder_vq_f4.pth

Released weights are downloaded into --weights_dir on first use (official release URLs)
and converted once. Every argument problem is reported before any work starts; an image
that cannot be read is reported and skipped, and the exit status is then 1.
"""
import dataclasses
import sys

from absl import app, flags, logging

from resshift_jax import config_file, releases

config_file.DEFINE_config_file(
    "config", "configs/*.py of the model; default: chosen by --task/--version.",
    lock_config=False)
flags.DEFINE_string("in_path", None, "input image or folder (recursive)", short_name="i")
flags.DEFINE_string("out_path", "./results", "output folder (PNG, named like the inputs)",
                    short_name="o")
flags.DEFINE_string("mask_path", None, "mask file or folder (inpainting: 1/white = fill)")
flags.DEFINE_enum("task", "realsr", list(releases.TASKS), "restoration task (released models)")
flags.DEFINE_enum("version", "v1", list(releases.REALSR_VERSIONS),
                  "realsr release (v1/v2: 15 steps, v3: 4, sinsr: SinSR's one-step student); "
                  "absl keeps -v for verbosity")
flags.DEFINE_enum("sampler", None, ["ddpm", "ddim", "onestep"],
                  "reverse step: ddpm (ResShift), ddim (SinSR's deterministic one), onestep (one "
                  "network call at t=T-1); default the config's (ddpm; onestep for sinsr)")
flags.DEFINE_integer("steps", None, "respace the chain to this many steps (ddpm/ddim)")
flags.DEFINE_integer("scale", None, "scale factor; default the config's (4, 2 for realsr_x2)")
flags.DEFINE_integer("seed", None, "random seed (default the config's, 12345 as the reference)",
                     lower_bound=-2**63, upper_bound=2**63 - 1)
flags.DEFINE_integer("bs", None, "images per network call, sharded over the local devices "
                     "(default: one per device)", lower_bound=1)
flags.DEFINE_integer("chop_size", None,
                     "tile size in LQ pixels for large images (512/256/64; default the config's)")
flags.DEFINE_integer("chop_stride", None, "tile stride in LQ pixels (-1: the reference's rule)")
flags.DEFINE_integer("chop_bs", None, "tiles per network call (default: one per device)",
                     lower_bound=1)
flags.DEFINE_enum("pad", "auto", ["auto", "bucket", "reference"],
                  "bucket: pad images to a few square sizes and tiles to the chop's shape, so a "
                  "folder compiles few programs; reference: pad each to a multiple of the "
                  "model's lq_size, exactly as the reference (one program per padded size); "
                  "auto: bucket on GPUs/TPUs, reference on CPUs (docs/sampling.md)")
flags.DEFINE_enum("blend", None, ["gaussian", "average"],
                  "tile blending; 'average' reproduces the reference exactly (default: gaussian)")
flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"],
                  "compute dtype, parameters stay float32 (default the config's: float32)")
flags.DEFINE_string("unet_ckpt", None, "UNet weights: a released name, a .pth or converted "
                    ".safetensors file, or a training workdir (its latest EMA weights)")
flags.DEFINE_string("vq_ckpt", None, "autoencoder weights: a released name, .pth or .safetensors")
flags.DEFINE_string("weights_dir", "./weights", "where released weights are kept / downloaded")
flags.DEFINE_string("compilation_cache", None,
                    "persistent XLA compilation cache folder (a second run does not recompile)")
flags.DEFINE_enum("alpha", "keep", ["keep", "drop"], "RGBA inputs: re-attach alpha or drop it")
flags.DEFINE_bool("overwrite", False, "replace existing results (inputs are never touched)")
flags.DEFINE_float("max_output_megapixels", 256.0, "refuse images whose output is larger")
flags.register_validator("max_output_megapixels", lambda mp: mp > 0, "must be positive")
flags.DEFINE_bool("multihost", False, "one process per host: each restores a disjoint share of "
                  "the files on its local devices; process 0 prints the summary of all hosts")
flags.DEFINE_string("coordinator_address", None, "--multihost without auto-detection: host:port "
                    "of process 0 (else JAX_COORDINATOR_ADDRESS, or TPU/SLURM detection)")
flags.DEFINE_integer("num_processes", None, "--multihost: the number of processes")
flags.DEFINE_integer("process_id", None, "--multihost: this process's index")
flags.DEFINE_float("multihost_wait", 3600.0, "--multihost: seconds process 0 waits for the "
                   "other hosts' summaries after its own share (in all, however many are missing)")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    sys.stdout.reconfigure(errors="backslashreplace")  # file names that are not valid text
    if not FLAGS["verbosity"].present:  # the progress bar and summary, not JAX's backend probing
        logging.set_verbosity(logging.WARNING)
    if not FLAGS.in_path:
        print("error: give the input image or folder with -i/--in_path", file=sys.stderr)
        return 2
    import jax
    import jax.numpy as jnp
    if FLAGS.compilation_cache:
        jax.config.update("jax_compilation_cache_dir", FLAGS.compilation_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

    from resshift_jax import builder, multihost, sample_job
    from resshift_jax.weights import CheckpointError, WeightsError

    config = FLAGS.config or releases.release(FLAGS.task, FLAGS.version).get_config()
    sampler = FLAGS.sampler or builder.sampler_of(config)
    if FLAGS.steps is not None:
        if sampler == "onestep" or not 1 <= FLAGS.steps <= int(config.diffusion.steps):
            print(f"error: --steps {FLAGS.steps}: give 1..{config.diffusion.steps} steps, with "
                  "the ddpm or ddim sampler", file=sys.stderr)
            return 2
        config.diffusion.timestep_respacing = FLAGS.steps
    sf = int(config.sf)
    if FLAGS.scale is not None and FLAGS.scale != sf:
        print(f"error: --scale {FLAGS.scale} does not match the model (x{sf}); for x2 use "
              "--config configs/realsr_x2.py with your --unet_ckpt", file=sys.stderr)
        return 2
    needs_mask = bool(config.model.get("cond_mask", False))
    if FLAGS.mask_path and not needs_mask:
        print(f"error: --mask_path {FLAGS.mask_path}: this model does not inpaint (masks are for "
              "--task inpaint_imagenet / inpaint_face)", file=sys.stderr)
        return 2
    try:
        chop_size, chop_stride = builder.tile_geometry(config, FLAGS.chop_size, FLAGS.chop_stride)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    blend = FLAGS.blend or config.sample.blend
    dtype = FLAGS.dtype or config.sample.compute_dtype
    if FLAGS.multihost:
        multihost.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    devices = jax.local_devices()
    bs, chop_bs = (FLAGS.bs or len(devices)), (FLAGS.chop_bs or len(devices))
    opts = sample_job.JobOptions(
        in_path=FLAGS.in_path, out_path=FLAGS.out_path, mask_path=FLAGS.mask_path, bs=bs,
        chop_size=chop_size, chop_stride=chop_stride, chop_bs=chop_bs, blend=blend,
        seed=config.sample.seed if FLAGS.seed is None else FLAGS.seed, alpha=FLAGS.alpha,
        overwrite=FLAGS.overwrite, max_output_megapixels=FLAGS.max_output_megapixels)
    try:
        jobs = sample_job.plan_job(opts, sf=sf, needs_mask=needs_mask)
        if FLAGS.multihost:
            jobs = multihost.share(jobs, jax.process_index(), jax.process_count())
        restorer, params = builder.build_restorer(
            config, dtype=getattr(jnp, dtype), unet_ckpt=FLAGS.unet_ckpt, vq_ckpt=FLAGS.vq_ckpt,
            weights_dir=FLAGS.weights_dir)
    except (sample_job.JobError, CheckpointError, WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    restorer = dataclasses.replace(restorer, sampler=sampler)
    image_restorer = builder.image_restorer(
        config, restorer, params, chop_size=FLAGS.chop_size, chop_stride=FLAGS.chop_stride,
        chop_bs=chop_bs, bs=bs, blend=blend, seed=opts.seed, pad=FLAGS.pad, devices=devices)
    print(f"{len(jobs)} images, x{sf}, {restorer.num_steps} {sampler} steps, "
          f"tiles {chop_size}/{chop_stride} LQ px, {dtype}, batches {bs} images / {chop_bs} "
          f"tiles on {image_restorer.num_devices} of {len(devices)} {devices[0].platform} "
          f"devices, {image_restorer.pad} padding", file=sys.stderr)
    if not FLAGS.multihost:
        summary = sample_job.run_job(image_restorer, opts, jobs)
        print(summary.line())
        return 1 if summary.failures else 0
    try:
        summary = sample_job.run_job(image_restorer, opts, jobs)
    except Exception as e:  # noqa: BLE001 -- this host's failure is reported by process 0 too
        summary = sample_job.Summary(failures=[f"host {jax.process_index()}: {e!r}"])
    multihost.publish(summary, jax.process_index())
    if jax.process_index() != 0:
        print(f"host {jax.process_index()}: {summary.line()}")
        return 1 if summary.failures else 0
    lines, ok = multihost.report(multihost.gather(jax.process_count(), FLAGS.multihost_wait),
                                 FLAGS.multihost_wait)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=config_file.parse_flags)
