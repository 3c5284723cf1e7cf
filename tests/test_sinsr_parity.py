"""SinSR's own numbers (tests/fixtures/sinsr, written by tools/dump_sinsr.py from its code):
the deterministic chain, the one-step student and the distillation loss terms and gradients.

Tolerances are the parity contract's (tests/fixtures/parity/README.md): whole chains 2e-4.
"""
import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resshift_jax import diffusion
from resshift_jax.convert.loading import build_model, load_params, params_from_state_dict
from resshift_jax.convert.pth import load_state_dict
from resshift_jax.convert.unet import unet_params_to_torch
from resshift_jax.parity import relative_error
from resshift_jax.sampling import Restorer, make_restore_fn
from resshift_jax.train.distill import distill_terms
from resshift_jax.train.objective import latent_pair

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "sinsr"
CHAIN_TOL = 2e-4


def nhwc(x):
    x = np.asarray(x)
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x.transpose(0, 1, 3, 4, 2)


@pytest.fixture(scope="module")
def sinsr():
    """(meta, restorer, teacher params, student params, vq params, ddim io, distill io)."""
    meta = json.loads((FIXTURES / "fixtures.json").read_text())
    unet = build_model("unet", meta["unet"]["params"])
    vq = build_model("vq", meta["vq"]["params"])
    restorer = Restorer(unet=unet, vq=vq, schedule=diffusion.make_schedule(**meta["diffusion"]),
                        sf=int(meta["diffusion"]["sf"]))
    teacher_pth = FIXTURES / meta["unet"]["checkpoint"]
    state = load_state_dict(teacher_pth)
    overrides = np.load(FIXTURES / meta["student_overrides"])
    assert set(overrides.files) <= set(state)
    state.update({k: overrides[k] for k in overrides.files})
    return dict(meta=meta, restorer=restorer, overrides=overrides.files,
                teacher=load_params("unet", teacher_pth, unet),
                student=jax.tree.map(jnp.asarray, params_from_state_dict("unet", state, unet)),
                vq=load_params("vq", FIXTURES / meta["vq"]["checkpoint"], vq),
                ddim=dict(np.load(FIXTURES / meta["ddim"])),
                distill=dict(np.load(FIXTURES / meta["distill"])))


def test_schedule_and_ddim_coefficients_match_sinsr(sinsr):
    """SinSR floors the first sqrt(eta) at sqrt(0.001); at v1's settings (as here) the
    schedules agree, and its k, m, j (derived in p_mean_variance) are ours."""
    ref = {k: np.asarray(v) for k, v in sinsr["meta"]["schedule"].items()}
    ours = diffusion.schedule_arrays(**sinsr["meta"]["diffusion"])
    for key in ("sqrt_etas", "etas", "etas_prev", "timestep_map"):
        assert relative_error(ours[key], ref[key]) < 1e-12, key
    coef = diffusion.ddim_coefficients(ours["etas"])
    np.testing.assert_allclose(coef["ddim_m"], np.sqrt(ref["ddim_coef2"]), rtol=1e-12)
    np.testing.assert_allclose(coef["ddim_j"], ref["etas_prev"] - np.sqrt(ref["ddim_coef1"]),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        coef["ddim_k"], 1 - ref["etas_prev"] + np.sqrt(ref["ddim_coef1"]) - np.sqrt(ref["ddim_coef2"]),
        rtol=1e-12)


def _chain(sinsr, sampler, params):
    io = sinsr["ddim"]
    restorer = dataclasses.replace(sinsr["restorer"], sampler=sampler)
    fn = make_restore_fn(restorer, return_chain=True)
    return fn({"unet": params, "vq": sinsr["vq"]}, jnp.asarray(nhwc(io["lq"])),
              noises=(jnp.asarray(nhwc(io["noise_prior"])), None))


def test_ddim_chain_matches_sinsr_ddim_sample_loop(sinsr):
    io = sinsr["ddim"]
    chain = _chain(sinsr, "ddim", sinsr["teacher"])
    assert chain["samples"].shape[0] == sinsr["meta"]["diffusion"]["steps"]
    errors = {k: relative_error(np.asarray(chain[k]), nhwc(io[k]))
              for k in ("z_y", "samples", "pred_xstart", "out")}
    assert max(errors.values()) < CHAIN_TOL, errors
    # the last step is the x0 prediction itself (k = 1, m = j = 0 at t = 0)
    np.testing.assert_array_equal(chain["samples"][-1], chain["pred_xstart"][-1])


def test_onestep_student_matches_sinsr_one_step_inference(sinsr):
    io = sinsr["ddim"]
    chain = _chain(sinsr, "onestep", sinsr["student"])
    assert chain["samples"].shape[0] == 1
    assert relative_error(np.asarray(chain["pred_xstart"][0]), nhwc(io["onestep_pred"])) < CHAIN_TOL
    assert relative_error(np.asarray(chain["out"]), nhwc(io["onestep_out"])) < CHAIN_TOL
    teacher = _chain(sinsr, "onestep", sinsr["teacher"])  # the student is not the teacher
    assert relative_error(np.asarray(teacher["out"]), nhwc(io["onestep_out"])) > 100 * CHAIN_TOL


def test_distillation_terms_and_gradients_match_sinsr(sinsr):
    io, flags, restorer = sinsr["distill"], sinsr["meta"]["flags"], sinsr["restorer"]
    z_start, z_y = latent_pair(restorer, sinsr["vq"], jnp.asarray(nhwc(io["hq"])),
                               jnp.asarray(nhwc(io["lq"])))
    lq, noise = jnp.asarray(nhwc(io["lq"])), jnp.asarray(nhwc(io["noise"]))

    def loss(student):
        terms = distill_terms(restorer, student, sinsr["teacher"], z_start, z_y, lq, noise,
                              learn_xT=flags["learn_xT"], finetune_use_gt=flags["finetune_use_gt"])
        return jnp.mean(terms["loss"]), terms

    grads, terms = jax.jit(jax.grad(loss, has_aux=True))(sinsr["student"])
    errors = {k: relative_error(np.asarray(terms[k]), nhwc(io[k]) if io[k].ndim == 4 else io[k])
              for k in ("z_t", "z0_teacher", "pred_zstart", "mse", "mse_xT", "mse_gt", "loss")}
    torch_grads = unet_params_to_torch(grads)
    errors.update({f"grad:{k}": relative_error(torch_grads[k], io[f"grad:{k}"])
                   for k in sinsr["overrides"]})
    assert max(errors.values()) < CHAIN_TOL, errors
    assert min(float(np.abs(io[f"grad:{k}"]).max()) for k in sinsr["overrides"]) > 1e-2
