"""Train ResShift: `python train.py --config configs/<experiment>.py --workdir DIR`.

A config with a `distill` section (configs/sinsr_v1.py) distils a one-step SinSR student.

Any config field can be overridden, e.g. `--config.train.batch=32`. The run resumes from
the latest checkpoint in DIR. On many hosts start the same command on every host, each
feeding its own slice of the global batch: with `--multihost` where JAX finds the cluster
itself (TPU pod slices, SLURM, Open MPI), else with `--coordinator_address HOST:PORT
--num_processes N --process_id I` (README, "Training on many hosts").
"""
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


def run(config, workdir: str, weights_dir: str = "./weights"):
    """Build the experiment from `config` and train it; returns the final train state."""
    import jax
    import jax.numpy as jnp

    from resshift_jax.builder import restorer_from_config
    from resshift_jax.data.pipeline import make_train_iterator
    from resshift_jax.data.val import load_val_set
    from resshift_jax.train import experiment
    from resshift_jax.train.loop import train_and_evaluate

    val_set = None  # read first: a missing folder or an empty set stops the run at once
    if config.data.get("val") is not None:
        val_set = load_val_set(config.data.val, int(config.sf), config.data.train)
    dtype = getattr(jnp, config.train.get("compute_dtype", "float32"))
    restorer = restorer_from_config(config, dtype)
    frozen = experiment.load_frozen(config, restorer, weights_dir)
    if config.get("distill") is not None:  # SinSR: the teacher joins the frozen params
        from resshift_jax.train import distill
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
                               data_iterator=data, frozen=frozen, eval_fn=eval_fn)
    if last and jax.process_index() == 0:
        print(f"validation, last step:\n{experiment.format_val_comparison(last)}")
    return state


class _QuietOrbax:
    """Drop orbax's per-save INFO chatter; keep progress, metrics and warnings."""

    def filter(self, record) -> bool:
        return record.levelno >= 30 or "orbax" not in record.pathname


def main(argv):
    del argv
    logging.get_absl_handler().addFilter(_QuietOrbax())
    explicit = {"coordinator_address": FLAGS.coordinator_address,
                "num_processes": FLAGS.num_processes, "process_id": FLAGS.process_id}
    if FLAGS.multihost or any(v is not None for v in explicit.values()):
        import jax
        jax.distributed.initialize(**explicit)  # what is not given is auto-detected
    from resshift_jax.data.val import ValSetError
    from resshift_jax.train.experiment import SetupError
    from resshift_jax.sharding import BatchError
    try:
        run(FLAGS.config, FLAGS.workdir, FLAGS.weights_dir)
    except (SetupError, BatchError, ValSetError) as e:
        logging.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=config_file.parse_flags)
