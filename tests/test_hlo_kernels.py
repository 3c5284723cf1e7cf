"""bench/hlo_kernels.py: kernels per call, loops counted once per iteration."""
import jax
import jax.numpy as jnp
import pytest

from bench.hlo_kernels import kernel_launches

SYNTHETIC = """HloModule m

%fused (p: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  ROOT %s = f32[4]{0} sine(%p)
}

%body (t: (s32[], f32[4])) -> (s32[], f32[4]) {
  %t = (s32[], f32[4]{0}) parameter(0)
  %x = f32[4]{0} get-tuple-element(%t), index=1
  %i = s32[] get-tuple-element(%t), index=0
  %y = f32[4]{0} fusion(%x), kind=kLoop, calls=%fused
  %z = (f32[4]{0}, u8[0]{0}) custom-call(%y), custom_call_target="__cublas$gemm"
  %w = f32[4]{0} get-tuple-element(%z), index=0
  ROOT %r = (s32[], f32[4]{0}) tuple(%i, %w)
}

%cond (t: (s32[], f32[4])) -> pred[] {
  %t = (s32[], f32[4]{0}) parameter(0)
  %i = s32[] get-tuple-element(%t), index=0
  %n = s32[] constant(5)
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

%small (a: f32[4]) -> f32[4] {
  %a = f32[4]{0} parameter(0)
  ROOT %c = f32[4]{0} copy(%a)
}

%large (a: f32[4]) -> f32[4] {
  %a = f32[4]{0} parameter(0)
  %b = f32[4]{0} fusion(%a), kind=kLoop, calls=%fused
  ROOT %c = f32[4]{0} fusion(%b), kind=kLoop, calls=%fused
}

ENTRY %main (x: f32[4], k: s32[]) -> f32[4] {
  %x = f32[4]{0} parameter(0)
  %k = s32[] parameter(1)
  %zero = s32[] constant(0)
  %init = (s32[], f32[4]{0}) tuple(%zero, %x)
  %known = (s32[], f32[4]{0}) while(%init), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"5"}}
  %unknown = (s32[], f32[4]{0}) while(%known), condition=%cond, body=%body
  %v = f32[4]{0} get-tuple-element(%unknown), index=1
  %branch = f32[4]{0} conditional(%k, %v, %v), branch_computations={%small, %large}
  ROOT %out = f32[4]{0} call(%branch), to_apply=%small
}
"""


def test_counts_fusions_and_library_calls_once_per_loop_iteration():
    # known loop 5 x 2, unknown loop counted once 2, the larger branch 2, the call's copy 1
    assert kernel_launches(SYNTHETIC) == 10 + 2 + 2 + 1
    with pytest.raises(ValueError, match="ENTRY"):
        kernel_launches(SYNTHETIC.replace("ENTRY ", ""))


def test_a_compiled_scan_grows_by_its_body_per_iteration():
    def chain(x, steps):
        return jax.lax.scan(lambda c, _: (jnp.sin(c @ c) + 1, None), x, None, length=steps)[0]

    counts = {n: kernel_launches(jax.jit(chain, static_argnums=1).lower(jnp.ones((64, 64)), n)
                                 .compile().as_text()) for n in (2, 4, 8)}
    assert counts[8] > counts[4] > counts[2] > 0
    assert counts[8] - counts[4] == 2 * (counts[4] - counts[2])
