"""Input pipeline throughput: examples/s per worker for a config's training data.

    python -m bench.data_bench [--config configs/realsr_v3.py] [--examples 64] [--workers 1,2]
        [--step_images_per_s 120]

Reads from the bundled scikit-image photographs (so it runs anywhere) through the config's
own crop and degradation (Real-ESRGAN x4, 256 crops for realsr_v3). With the measured
images/s of a training step it prints how many workers a host needs to keep up.
"""
import argparse
import importlib.util
import math
import time

from resshift_jax.data.pipeline import make_train_iterator


def load_config(path):
    spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/realsr_v3.py")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--step_images_per_s", type=float, default=None,
                        help="a training step's images/s, to size the worker pool")
    args = parser.parse_args()
    config = load_config(args.config)
    data = config.data.train
    data.sources = ({"type": "skimage", "names": ("astronaut", "coffee", "chelsea", "rocket",
                                                  "immunohistochemistry", "retina")},)
    for workers in map(int, args.workers.split(",")):
        data.num_workers = workers
        it = make_train_iterator(data, per_host_batch=8, seed=0, sf=int(config.sf))
        next(it)  # warm-up
        start = time.perf_counter()
        for _ in range(max(1, args.examples // 8)):
            next(it)
        rate = 8 * max(1, args.examples // 8) / (time.perf_counter() - start)
        line = f"{workers} worker(s): {rate:.1f} examples/s ({rate / workers:.1f} per worker)"
        if args.step_images_per_s:
            line += f"; {math.ceil(args.step_images_per_s / (rate / workers))} workers needed"
        print(line)


if __name__ == "__main__":
    main()
