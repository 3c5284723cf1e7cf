"""The device suite's sections: each runs in its own process and emits table rows.

A section is `fn(plan, emit)`; `emit(row)` appends one row (a dict, keys as
`device_suite.COLUMNS`) as it completes, so a section stopped at its time budget keeps the
rows it finished. The JAX sections reuse the benches' programs (sample_bench, train_bench,
onestep_bench); the reference section runs `reference_side.py suite` under a Python with
torch, the folder section folder_bench's runs (ours twice, then the reference), each in a
child process. Nothing here imports jax at module level: the reference and folder sections'
processes must not take the GPU's memory.
"""
import dataclasses
import json
import pathlib
import subprocess
import sys
import time
from typing import Callable, Optional, Tuple

from bench.common import (ROOT, cpu_client_flops, device_peak_bytes, fake_params,
                          largest_array_bytes, median_time, program_bytes, program_flops,
                          xla_flops)
from bench.hlo_kernels import kernel_launches

PARITY = ROOT / "tests" / "fixtures" / "parity"
DEVICE_FOLDER = ROOT / "device_data" / "folder"  # bench/device_prep.sh's crops (git-ignored)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the suite measures: the GPU run's sizes, or the dry run's tiny ones."""
    dry_run: bool
    config: str                      # configs module of the architecture
    size: int                        # chain LQ size (x4 output)
    chain: Tuple[Tuple[str, int], ...]  # (dtype, batch), most wanted first
    tile_lq: int
    tile_dtypes: Tuple[str, ...]
    train_batches: Tuple[int, ...]   # per device, bfloat16
    onestep_batches: Tuple[int, ...]  # bfloat16
    ref_chain: Tuple[int, ...]
    ref_train: Tuple[int, ...]
    parity_only: Optional[Tuple[str, ...]]
    lpips_net: Optional[str]         # the training loss's LPIPS trunk (None: MSE only)
    iters: int
    peak_tflops: float
    reference: Optional[str] = None
    torch_python: str = sys.executable
    folder: Optional[str] = None     # the folder section's crops (None in a dry run: made)
    eval_size: int = 256             # the evaluate metrics' images, pixels a side
    eval_batch: int = 32
    lower_for: Optional[str] = None  # preflight: lower every program for this platform only
    target: Optional[str] = None     # ... and compile it for this GPU description (cross_compile)


GPU = dict(dry_run=False, config="realsr_v3", size=64,
           chain=(("bfloat16", 64), ("bfloat16", 1), ("float32", 1), ("bfloat16", 8),
                  ("float32", 8), ("float32", 64)),
           tile_lq=512, tile_dtypes=("float32", "bfloat16"), train_batches=(16, 64),
           onestep_batches=(1, 64), ref_chain=(1, 64), ref_train=(16,), parity_only=None,
           lpips_net="vgg", iters=5)
DRY = dict(dry_run=True, config="tiny_test", size=32, chain=(("bfloat16", 1),), tile_lq=64,
           tile_dtypes=("float32",), train_batches=(1,), onestep_batches=(1,), ref_chain=(1,),
           ref_train=(1,), parity_only=("schedules", "bicubic"), lpips_net=None, iters=1,
           eval_size=64, eval_batch=2)


# the dry run shrinks tiny_test further (and trains on MSE alone): XLA:CPU compile time grows
# with the layer count
MICRO_UNET = dict(channel_mult=(1, 2), num_res_blocks=(1, 1), attention_resolutions=(),
                  swin_depth=1, swin_embed_dim=32)
MICRO_VQ = dict(num_res_blocks=1)


def config_of(name: str, dry_run: bool):
    """The configs module `name`'s config, shrunk further in a dry run."""
    import importlib
    config = importlib.import_module(f"configs.{name}").get_config()
    if dry_run:
        config.model.update(MICRO_UNET)
        config.autoencoder.params.ddconfig.update(MICRO_VQ)
    return config


def _config(plan: Plan):
    return config_of(plan.config, plan.dry_run)


def _counted(plan: Plan) -> str:
    return f"lowered for {plan.lower_for}, counted on the CPU client" if plan.lower_for \
        else "compiled"


def _gib(n) -> Optional[float]:
    return None if n is None else n / 2 ** 30


def measure(emit, section: str, name: str, jitted, args, *, dtype: str, batch: int,
            iters: int, run=None, note="", lower_for=None, target=None, donate_argnums=()):
    """Compile `jitted` for `args`, time it, emit its row; returns the compiled program's XLA
    FLOPs. `run(compiled)` overrides the timed call (a donating train step). FLOP rates are
    the suite's to add (`flops` records). With `lower_for` (a preflight), `lower_only`;
    `target` and `donate_argnums` (`jitted`'s own) are its cross-compilation's."""
    import jax
    if lower_for:
        return lower_only(emit, section, name, jitted, args, dtype=dtype, batch=batch,
                          note=note, platform=lower_for, target=target,
                          donate_argnums=donate_argnums)
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - start
    if run is None:
        seconds = median_time(lambda: jax.block_until_ready(compiled(*args)), iters=iters)
    else:
        seconds = run(compiled)
    emit(dict(section=section, name=name, dtype=dtype, batch=batch, seconds=seconds,
              images_per_s=batch / seconds, compile_s=compile_s,
              program_gib=_gib(program_bytes(compiled)), peak_gib=_gib(device_peak_bytes()),
              status="ok", note="; ".join(filter(None, [note, _kernels(compiled)]))))
    return xla_flops(compiled)


def _kernels(compiled) -> str:
    """The row's note on kernel launches; a failure to count never costs the row its timing."""
    try:
        return f"{kernel_launches(compiled.as_text())} kernels a call"
    except Exception as err:  # noqa: BLE001  (a diagnostic: any error is reported, not raised)
        return f"kernels not counted ({type(err).__name__})"


def lower_only(emit, section: str, name: str, jitted, args, *, dtype: str, batch: int,
               note: str, platform: str, target=None, donate_argnums=()):
    """Lower `jitted` for `platform` without running it (a preflight on a machine without
    that platform), and with a `target` GPU description compile it for that GPU
    (bench/cross_compile.py); emit its row (the largest array it holds; compiled, the bytes
    the GPU would hold and whether they fit) and return its FLOPs, XLA's count of that
    platform's program on the CPU client."""
    start = time.perf_counter()
    if target is None:
        lowered = jitted.trace(*args).lower(lowering_platforms=(platform,))
        status, memory = f"lowered for {platform}", []
    else:
        from bench import cross_compile
        target = pathlib.Path(target)
        device = cross_compile.target_device(target)
        lowered, compiled = cross_compile.compile_for(jitted, args, device, donate_argnums)
        needs = program_bytes(compiled)
        fits, available = cross_compile.fits(needs, target)
        status = f"compiled for {device.device_kind}" if fits else "would not fit"
        memory = [f"{_gib(needs):.3g} of {available:.3g} GiB", _kernels(compiled)]
    seconds = time.perf_counter() - start
    largest = largest_array_bytes(lowered.as_text())
    emit(dict(section=section, name=name, dtype=dtype, batch=batch, status=status,
              program_gib=None if target is None else _gib(needs),
              compile_s=None if target is None else seconds,
              note="; ".join(filter(None, [note, *memory, f"largest array {_gib(largest):.3g} GiB",
                                           None if target else f"lowered in {seconds:.1f} s"]))))
    return cpu_client_flops(lowered)


def flops_record(section: str, per_image, how: str) -> dict:
    """The FLOPs per image the suite applies to `section`'s rows (MFU, TFLOP/s)."""
    return {"flops": {"section": section, "per_image": per_image, "how": how}}


def meta(plan: Plan) -> dict:
    import jax
    dev = jax.devices()[0]
    target = {}
    if plan.target:
        from bench.cross_compile import target_device
        target = {"target": target_device(pathlib.Path(plan.target)).device_kind}
    return {"jax": jax.__version__, "backend": dev.platform, "device": dev.device_kind,
            "devices": jax.device_count(), **target}


def parity(plan: Plan, emit):
    """The parity fixtures at float32, highest matmul precision: a row per fixture as it is
    judged, then the verdict."""
    from resshift_jax.parity import run_fixtures
    start = time.perf_counter()
    names = plan.parity_only or tuple(json.loads((PARITY / "fixtures.json").read_text()))
    passed = failed = 0
    for name in names:
        group = run_fixtures(PARITY, dtype="float32", only=(name,))
        ok = bool(group) and all(r.status == "pass" for r in group)
        passed, failed = passed + ok, failed + (not ok)
        worst = max(group, key=lambda r: r.rel if r.rel == r.rel else float("inf"),
                    default=None)
        emit(dict(section="parity", name=name, dtype="float32", status="pass" if ok else "FAIL",
                  note="no arrays compared" if worst is None else
                  f"{len(group)} arrays, worst rel {worst.rel:.2g} ({worst.array}, tol "
                  f"{worst.tol:.0e})" + ("" if ok else f": {worst.status}")))
    emit(dict(section="parity", name="all fixtures", dtype="float32",
              status="pass" if passed and not failed else "FAIL",
              note=f"{passed} fixtures passed, {failed} failed (highest matmul precision), "
                   f"{time.perf_counter() - start:.0f} s"))


def _chain_flops(restorer, params, size: int, platform=None) -> dict:
    """XLA-counted FLOPs per image: the batch-1 chain, its steps unrolled (no loop), lowered
    for `platform` (default: this machine's)."""
    from bench.sample_bench import chain_args
    from resshift_jax.sampling import make_restore_fn
    flops, how = program_flops(make_restore_fn(restorer, use_scan=False),
                               chain_args(params, 1, size), platform)
    return flops_record("chain", flops, f"the batch-1 chain unrolled, {how}")


def chain(plan: Plan, emit):
    """The whole compiled chain at each (dtype, batch): latency, images/s, memory; its FLOPs
    (one more program) after the first row."""
    import jax.numpy as jnp
    from bench.sample_bench import chain_args
    from resshift_jax.builder import restorer_from_config
    from resshift_jax.sampling import make_restore_fn
    config = _config(plan)
    restorers = {d: restorer_from_config(config, getattr(jnp, d)) for d in {d for d, _ in plan.chain}}
    params = fake_params(next(iter(restorers.values())))
    out = plan.size * restorers[plan.chain[0][0]].sf
    for i, (dtype, batch) in enumerate(plan.chain):
        measure(emit, "chain", f"{plan.size}->{out} x{batch}", make_restore_fn(restorers[dtype]),
                chain_args(params, batch, plan.size), dtype=dtype, batch=batch, iters=plan.iters,
                lower_for=plan.lower_for, target=plan.target)
        if i == 0:
            emit(_chain_flops(restorers[dtype], params, plan.size, plan.lower_for))


def tile(plan: Plan, emit):
    """One chop-size tile (512 LQ -> 2048 x 2048 on the GPU) through the chain."""
    import jax.numpy as jnp
    from bench.sample_bench import chain_args
    from resshift_jax.builder import restorer_from_config
    from resshift_jax.sampling import make_restore_fn
    config = _config(plan)
    params = None
    for dtype in plan.tile_dtypes:
        restorer = restorer_from_config(config, getattr(jnp, dtype))
        params = params or fake_params(restorer)
        out = plan.tile_lq * restorer.sf
        measure(emit, "tile", f"{plan.tile_lq}->{out} tile", make_restore_fn(restorer),
                chain_args(params, 1, plan.tile_lq), dtype=dtype, batch=1, iters=1,
                note="" if plan.lower_for else "completes", lower_for=plan.lower_for,
                target=plan.target)


def out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in str(err)


def train(plan: Plan, emit):
    """The journal recipe's training step in bfloat16 at each per-device batch; FLOPs from
    the first measured (its attention unblocked up to 16 per device on a GPU: no loop). A
    batch the device cannot hold leaves an "out of memory" row, and half of it is tried
    next, while that is above every batch measured."""
    import jax
    import jax.numpy as jnp
    from bench.train_bench import step_time, train_parts, train_program
    config = _config(plan)
    parts = train_parts(config, jnp.bfloat16, plan.lpips_net)
    devices = jax.device_count()
    iters = max(2, plan.iters - 2)
    loss = f"MSE + LPIPS-{plan.lpips_net}" if plan.lpips_net else "MSE only"
    pending, largest, counted = list(plan.train_batches), 0, False
    while pending:
        per_device = pending.pop(0)
        batch, name = per_device * devices, f"step x{per_device}/device"
        try:
            step, *args = train_program(config, parts, batch)
            flops = measure(emit, "train", name, step, args, dtype="bfloat16", batch=batch,
                            iters=iters, note=loss, lower_for=plan.lower_for,
                            target=plan.target, donate_argnums=(0,),
                            run=lambda compiled, args=args: step_time(compiled, *args, iters))
        except Exception as err:  # noqa: BLE001  (anything else is the section's error)
            if not out_of_memory(err):
                raise
            step = args = None  # the failed batch's state and arrays go before the next
            emit(dict(section="train", name=name, dtype="bfloat16", batch=batch,
                      status="out of memory", note=f"{loss}; {str(err).splitlines()[0][:200]}"))
            if per_device // 2 > largest and per_device // 2 not in pending:
                pending.insert(0, per_device // 2)
            continue
        largest = max(largest, per_device)
        if not counted:
            counted = True
            emit(flops_record("train", flops and flops / batch,
                              f"the batch-{batch} step, {_counted(plan)}; remat included"))


def onestep(plan: Plan, emit):
    """SinSR's one-step student (one UNet call at t = T-1) at the v3 sizes, bfloat16; FLOPs
    from the first batch (XLA drops a one-trip loop)."""
    import jax.numpy as jnp
    from bench.onestep_bench import chain_restorer
    from bench.sample_bench import chain_args
    from configs import realsr_v1
    from resshift_jax.builder import restorer_from_config
    from resshift_jax.sampling import make_restore_fn
    base = restorer_from_config(_config(plan), jnp.bfloat16)
    restorer = chain_restorer(base.unet, base.vq, realsr_v1, "onestep")
    params = fake_params(restorer)
    for i, batch in enumerate(plan.onestep_batches):
        flops = measure(emit, "onestep", f"SinSR student x{batch}", make_restore_fn(restorer),
                        chain_args(params, batch, plan.size), dtype="bfloat16", batch=batch,
                        iters=plan.iters, note="1 UNet call", lower_for=plan.lower_for,
                        target=plan.target)
        if i == 0:
            emit(flops_record("onestep", flops and flops / batch,
                              f"the batch-{batch} program, {_counted(plan)}"))


def evaluation(plan: Plan, emit):
    """`python -m resshift_jax.evaluate`'s five metrics (bench/eval_bench.py's, random weights;
    random pixels: the cost depends on neither), a row per metric as it is timed, then their sum."""
    import numpy as np
    from bench.eval_bench import metric_set
    n, size = plan.eval_batch, plan.eval_size
    rng = np.random.default_rng(0)
    pred, gt = (list(rng.integers(0, 256, (n, size, size, 3), np.uint8)) for _ in range(2))
    total = 0.0
    for metric in metric_set(n, tiny=plan.dry_run):
        start = time.perf_counter()
        metric.score(pred, gt)  # compiles
        compile_s = time.perf_counter() - start
        seconds = median_time(lambda: metric.score(pred, gt), warmup=0, iters=plan.iters)
        total += seconds
        emit(dict(section="eval", name=metric.name, dtype="float32", batch=n, seconds=seconds,
                  images_per_s=n / seconds, compile_s=compile_s,
                  peak_gib=_gib(device_peak_bytes()), status="ok", note=f"{size}x{size}"))
    emit(dict(section="eval", name="all five", dtype="float32", batch=n, seconds=total,
              images_per_s=n / total, status="ok", note=f"{size}x{size}, the rows above summed"))


def architecture(plan: Plan) -> dict:
    """The reference constructors' kwargs of the plan's config (ours are theirs)."""
    config = _config(plan)
    return {"unet": config.model.to_dict(), "vq": config.autoencoder.params.to_dict()}


def has_torch(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True, check=False)
    return probe.returncode == 0


def reference(plan: Plan, emit):
    """The PyTorch reference on the same device (fp16 AMP on a GPU): chain and train step."""
    if not plan.reference:
        emit(dict(section="reference", name="PyTorch reference", status="skipped: no --reference"))
        return
    if not has_torch(plan.torch_python):
        emit(dict(section="reference", name="PyTorch reference", status="skipped: no torch",
                  note=f"{plan.torch_python} cannot import torch"))
        return
    if not (pathlib.Path(plan.reference) / "models" / "unet.py").is_file():
        raise FileNotFoundError(f"{plan.reference}: not a ResShift checkout (no models/unet.py)")
    cmd = [plan.torch_python, str(ROOT / "bench" / "reference_side.py"), "suite",
           "--reference", plan.reference, "--size", str(plan.size), "--iters", str(plan.iters),
           "--chain_batches", json.dumps(list(plan.ref_chain)),
           "--train_batches", json.dumps(list(plan.ref_train)),
           "--amp", "true", "--arch", json.dumps(architecture(plan))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    header = None
    for line in proc.stdout:
        if not line.startswith("{"):
            print(line, end="")
            continue
        record = json.loads(line)
        if header is None:
            header = record
            emit({"meta": {"torch": record["torch"], "torch_device": record.get("gpu") or record["device"]}})
            continue
        amp = header["amp"]
        seconds, b = record["seconds"], record["batch"]
        emit(dict(section="reference", name=f"{record['what']} x{b}",
                  dtype="fp16 amp" if amp == "fp16" else "float32", batch=b, seconds=seconds,
                  images_per_s=b / seconds, peak_gib=_gib(record.get("peak_bytes")),
                  status="ok", note=f"torch {header['torch']} on {header['device']}"))
    if proc.wait():
        raise RuntimeError(f"reference_side.py exited with status {proc.returncode} (its "
                           "traceback is in the log)")


def folder(plan: Plan, emit):
    """A folder of real crops end to end (bench/folder_bench.py's `suite_rows`)."""
    from bench import folder_bench
    folder_bench.suite_rows(plan, lambda row: emit(dict(row, section="folder")))


SECTIONS: dict = {"parity": parity, "chain": chain, "tile": tile, "train": train,
                  "reference": reference, "onestep": onestep, "folder": folder,
                  "eval": evaluation}
JAX_FREE = ("reference", "folder")
LOWERED = ("chain", "tile", "train", "onestep")  # the sections a preflight lowers


def run_section(name: str, plan: Plan, emit: Callable[[dict], None]) -> None:
    if plan.lower_for and name not in LOWERED:
        emit(dict(section=name, name="(section)", status="skipped: a preflight lowers "
                  + ", ".join(LOWERED) + " only"))
        return
    if name not in JAX_FREE:
        emit({"meta": meta(plan)})
    SECTIONS[name](plan, emit)
