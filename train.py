"""Train ResShift: `python train.py --config configs/<experiment>.py --workdir DIR`.

A config with a `distill` section (configs/sinsr_v1.py) distils a one-step SinSR student.

Any config field can be overridden, e.g. `--config.train.batch=32`. The run resumes from
the latest checkpoint in DIR. Settings that cannot train (a bad value, a batch that does
not split over the devices, a workdir that cannot be written, missing data or weights, a
checkpoint of another config) stop it before any step with one line and status 2. SIGTERM
or a first Ctrl-C saves a checkpoint and stops with status 128 + the signal's number
(143, 130), so a scheduler or retry loop sees the run as unfinished. On many hosts start the same command on every host, each
feeding its own slice of the global batch: with `--multihost` where JAX finds the cluster
itself (TPU pod slices, SLURM, Open MPI), else with `--coordinator_address HOST:PORT
--num_processes N --process_id I` (README, "Training on many hosts").
"""
import pathlib
import signal
import sys

from absl import app, flags, logging
from resshift_jax import config_file

config_file.DEFINE_config_file("config", "configs/*.py experiment", lock_config=True)
flags.DEFINE_string("workdir", None, "checkpoints, TensorBoard logs and samples go here")
flags.DEFINE_bool("multihost", False, "one process per host: jax.distributed.initialize(), "
                  "the cluster auto-detected (TPU pod slice, SLURM, Open MPI)")
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (implies --multihost)")
flags.DEFINE_integer("num_processes", None, "number of processes (implies --multihost)")
flags.DEFINE_integer("process_id", None, "this process's index, 0..num_processes-1 "
                     "(implies --multihost)")
flags.DEFINE_string("weights_dir", "./weights", "where released weights are kept / downloaded")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def run(config, workdir: str, weights_dir: str = "./weights", stop=None):
    """Build the experiment from `config` and train it; returns the final train state.
    `stop` (a `StopFlag`) ends it early, after a checkpoint."""
    from resshift_jax import folders, sharding
    from resshift_jax.train import distill, experiment

    tc = config.train  # what can be checked without building anything, first
    experiment.check_train_config(tc)
    if config.get("distill") is not None:
        distill.check_loss_coef(tc)
    sharding.check_batch(int(tc.batch), int(tc.get("microbatch") or tc.batch), sharding.make_mesh())
    if pathlib.Path(workdir).is_file():
        raise folders.FolderError(f"{workdir}: the workdir is a file; give a folder")

    import jax
    import jax.numpy as jnp

    from resshift_jax.builder import restorer_from_config
    from resshift_jax.data.pipeline import make_train_iterator
    from resshift_jax.data.val import load_val_set
    from resshift_jax.train.loop import train_and_evaluate

    val_set = None  # read first: a missing folder or an empty set stops the run at once
    if config.data.get("val") is not None:
        val_set = load_val_set(config.data.val, int(config.sf), config.data.train)
    folders.check_writable(workdir, "workdir")
    dtype = getattr(jnp, config.train.get("compute_dtype", "float32"))
    restorer = restorer_from_config(config, dtype)
    frozen = experiment.load_frozen(config, restorer, weights_dir)
    if config.get("distill") is not None:  # SinSR: the teacher joins the frozen params
        init_params, frozen, loss_fn = distill.setup(config, restorer, frozen, weights_dir)
    else:
        key = jax.random.key(int(config.train.seed))
        init_params = experiment.init_unet_params(config, restorer, key, weights_dir)
        loss_fn = experiment.make_experiment_loss(config, restorer, dtype)
    data = make_train_iterator(
        config.data.train, per_host_batch=int(config.train.batch) // jax.process_count(),
        seed=int(config.train.seed), sf=int(config.sf), process_index=jax.process_index(),
        process_count=jax.process_count())
    eval_fn, last = None, {}
    if val_set is not None:
        scores = experiment.make_eval_fn(config, frozen, val_set)

        def eval_fn(params, step):
            last.clear()
            last.update(scores(params, step))
            return dict(last)
    state = train_and_evaluate(config, workdir, init_params=init_params, loss_fn=loss_fn,
                               data_iterator=data, frozen=frozen, eval_fn=eval_fn, stop=stop)
    if last and jax.process_index() == 0:
        print(f"validation, last step:\n{experiment.format_val_comparison(last)}")
    return state


class _Quiet:
    """Drop orbax's per-save INFO chatter and JAX's backend probing ("Unable to initialize
    backend 'tpu'"); keep progress, metrics and warnings."""

    def filter(self, record) -> bool:
        return record.levelno >= 30 or not any(
            name in record.pathname for name in ("orbax", "xla_bridge"))


def main(argv):
    del argv
    logging.get_absl_handler().addFilter(_Quiet())
    explicit = {"coordinator_address": FLAGS.coordinator_address,
                "num_processes": FLAGS.num_processes, "process_id": FLAGS.process_id}
    if FLAGS.multihost or any(v is not None for v in explicit.values()):
        import jax
        jax.distributed.initialize(**explicit)  # what is not given is auto-detected
    from resshift_jax.data.sources import DataError
    from resshift_jax.data.val import ValSetError
    from resshift_jax.folders import FolderError
    from resshift_jax.sharding import BatchError
    from resshift_jax.train.checkpoints import CheckpointMismatch, StopFlag
    from resshift_jax.train.experiment import SetupError
    stop = StopFlag()
    try:
        run(FLAGS.config, FLAGS.workdir, FLAGS.weights_dir, stop=stop)
    except (SetupError, BatchError, ValSetError, DataError, FolderError, CheckpointMismatch) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the run resumes from its last checkpoint", file=sys.stderr)
        return 128 + signal.SIGINT
    # stopped by a signal: not finished, so a scheduler or a retry loop runs it again
    return 128 + stop.signum if stop.signum else 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=config_file.parse_flags)
