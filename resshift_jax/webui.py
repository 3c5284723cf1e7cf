"""The Gradio page of the web demo: upload, settings, before/after slider, download.

Uploads are file fields, so they reach `webapp.Engine` as the bytes the browser sent
(Gradio's image fields would open them with PIL first and fail on a corrupt file with no
message). The preview beside them, or for inpainting the canvas to paint the mask on, is
the upload as `image_io` decodes it for `sample.py`, so an unreadable file is reported
by name as soon as it is dropped. A failed request raises `gr.Error` with the engine's
one line; the page shows it and the server goes on. `demo.queue(default_concurrency_limit=1)`
runs one request at a time, on the one device set the warm restorers share. Restore is
the page's only API endpoint (`/restore`); the page's own callbacks are private.
"""
import html

import gradio as gr
import numpy as np

from resshift_jax import image_io
from resshift_jax.webapp import Engine, Request, RequestError, painted_mask

_CHOP_SIZES = [("the model's", 0), ("512", 512), ("256", 256), ("64", 64)]
_WHITE = "#ffffff"
_PAINT_HINT = "Paint the region to fill (or upload a mask), then press Restore."


def _page_error(err: Exception) -> gr.Error:
    return gr.Error(html.escape(str(err)), print_exception=False)


def _version_kwargs(engine: Engine, task: str) -> dict:
    versions = engine.versions(task)
    return dict(choices=versions, value=versions[-1] if versions else None,
                visible=bool(versions))


def build_demo(engine: Engine, title: str = "ResShift (JAX): image restoration") -> gr.Blocks:
    """The page; `.queue(default_concurrency_limit=1).launch(...)` serves it."""
    tasks = engine.tasks()

    def on_model(task, version):
        needs_mask = engine.needs_mask(task, version)
        return engine.describe(task, version), gr.Group(visible=needs_mask)

    def on_upload(upload, task, version):
        """(preview, mask canvas, status) of the upload, decoded as `sample.py` reads it."""
        needs_mask = engine.needs_mask(task, version)
        preview = gr.Image(value=None, visible=not needs_mask)
        if not upload:
            return preview, None, ""
        try:
            rgb = np.round(image_io.read_image(upload)[0] * 255).astype(np.uint8)
        except image_io.ImageReadError as err:
            return preview, None, html.escape(f"cannot read this upload: {err}")
        if not needs_mask:
            return gr.Image(value=rgb, visible=True), None, ""
        canvas = {"background": rgb, "layers": [], "composite": None}
        return preview, canvas, _PAINT_HINT

    def restore(upload, task, version, seed, chop, bf16, editor, mask, progress=gr.Progress()):
        def report(done, total, desc):
            progress((done, total), desc=desc, unit="tiles")

        try:
            painted = painted_mask((editor or {}).get("layers")) if mask is None else None
            result = engine.restore(Request(
                image=upload, task=task, version=version or None,
                seed=None if seed is None else int(seed), chop_size=int(chop) or None,
                bf16=bool(bf16), mask=mask, painted=painted), progress=report)
        except image_io.ImageReadError as err:  # the painted layer itself
            raise _page_error(f"the painted mask: {err}") from None
        except RequestError as err:
            raise _page_error(err) from None
        after = str(result.after)
        return ((str(result.before), after), result.status,
                gr.DownloadButton(value=after, visible=True))

    first_version = _version_kwargs(engine, tasks[0])["value"]
    first_needs_mask = engine.needs_mask(tasks[0], first_version)
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {html.escape(title)}\nUpload an image, choose a model, press "
                    "**Restore**. Drag the slider to compare the input with the result.")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Input image", file_types=["image"], type="filepath",
                                 elem_id="input-file", height=120)
                preview = gr.Image(label="Input", interactive=False, format="png",
                                   visible=not first_needs_mask, elem_id="input-image",
                                   height=256)
                with gr.Group(visible=first_needs_mask) as mask_box:
                    editor = gr.ImageEditor(
                        label="Paint the region to fill (white)", type="filepath",
                        elem_id="mask-editor", sources=(), transforms=(), layers=False,
                        format="png", brush=gr.Brush(colors=[_WHITE], default_color=_WHITE,
                                                     color_mode="fixed"))
                    mask = gr.File(label="…or upload a mask (white = fill)",
                                   file_types=["image"], type="filepath", height=120)
                with gr.Row():
                    task = gr.Dropdown(tasks, value=tasks[0], label="Task")
                    version = gr.Dropdown(label="Version", **_version_kwargs(engine, tasks[0]))
                info = gr.Markdown(engine.describe(tasks[0], first_version))
                with gr.Accordion("Settings", open=False):
                    seed = gr.Number(12345, precision=0, label="Seed")
                    chop = gr.Dropdown(_CHOP_SIZES, value=0, label="Tile size (input pixels)")
                    bf16 = gr.Checkbox(False, label="bfloat16 compute")
                run = gr.Button("Restore", variant="primary", elem_id="restore")
            with gr.Column():
                slider = gr.ImageSlider(label="Input | result", type="filepath",
                                        elem_id="result")
                status = gr.Markdown(elem_id="status")
                download = gr.DownloadButton("Download PNG", visible=False)

        page_only = dict(show_progress="hidden", api_visibility="private")  # not API endpoints
        task.change(lambda t: gr.Dropdown(**_version_kwargs(engine, t)), task, version,
                    **page_only)
        for trigger in (task.change, version.change):
            trigger(on_model, [task, version], [info, mask_box], **page_only)
        for trigger in (upload.change, task.change, version.change):
            trigger(on_upload, [upload, task, version], [preview, editor, status], **page_only)
        run.click(restore, [upload, task, version, seed, chop, bf16, editor, mask],
                  [slider, status, download], api_name="restore")
    return demo


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 7860, **launch_kwargs):
    """Serve the page (blocking unless `prevent_thread_lock=True`); never a share link."""
    demo = build_demo(engine).queue(default_concurrency_limit=1)
    demo.launch(server_name=host, server_port=port, share=False, **launch_kwargs)
    return demo
