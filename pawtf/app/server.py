"""The web layer: a FastAPI application over one :class:`~pawtf.app.service.PhotoService`.

The page (``GET /``) is server-rendered HTML with the model's panel filled in, and one plain script and one
style sheet shipped in the package (``pawtf/app/static``): no build step, no CDN, it works offline. Behind it,
a JSON API that a shelter's own website can call too, documented at ``/docs`` (FastAPI's OpenAPI page):

``GET /api/model``     what the model is (task, backbone, training data, validation figures, limits)
``POST /api/score``    photos (multipart ``photos``, several) and optional ``flags`` -> ranked scores
``POST /api/explain``  one ``photo``, ``method``, optional ``flags`` -> a saliency overlay and a sentence
``POST /api/crop``     one ``photo``, optional ``flags`` -> crop advice, a preview and the cropped file

Example (the service loads the model once; uvicorn serves it):

>>> from pawtf.app import PhotoService, create_app
>>> app = create_app(PhotoService("saved_models/demo"))        # doctest: +SKIP
>>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
from pathlib import Path, PurePosixPath
from string import Template

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from pawtf.app.service import LimitError, PhotoService, Upload

__all__ = ["STATIC", "create_app", "render_page"]

#: The page's script, style sheet and template, shipped in the package.
STATIC = Path(__file__).with_name("static")
#: Room for the multipart framing and the form fields beside the photos' bytes, per request.
_FORM_SLACK = 2 ** 20


def _display_name(name: str | None, index: int) -> str:
    """The upload's file name for display only (any folders the client sent are dropped)."""
    name = PurePosixPath((name or "").replace("\\", "/")).name.strip()
    return name or f"photo {index + 1}"


def _read(files: list[UploadFile], max_bytes: int) -> list[Upload]:
    """The uploads' names and bytes; a file over `max_bytes` is read no further (its size is kept, so the
    service refuses it by name)."""
    uploads = []
    for i, f in enumerate(files):
        data = f.file.read(max_bytes + 1)
        size = f.size if f.size is not None else len(data)
        uploads.append(Upload(_display_name(f.filename, i), data if len(data) <= max_bytes else b"", size))
    return uploads


def _flags(text: str | None, many: bool):
    """The ``flags`` form field: JSON, a list of 12 0/1 values (one photo) or a list of them (several)."""
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"flags: not JSON ({err.msg}); send a list of 12 values of 0 or 1 per photo") from None
    if not isinstance(value, list):
        raise ValueError("flags: expected a JSON list")
    return value if many else [value]


def render_page(info: dict) -> str:
    """The page's HTML with the model panel filled in (every value escaped)."""
    figures = ", ".join(f"{k.removeprefix('val_').replace('_', ' ')} {v:.3g}" for k, v in info["validation"].items())
    trained = info["trained_on"]
    data = ("pawtf's synthetic demo data (cartoon pets)" if info["synthetic_demo"] else
            trained.get("data") or trained.get("data_dir") or "a data set of its own")
    warning = (f'<p class="warning" id="demo-warning"><strong>Demo model.</strong> {html.escape(info["warning"])}</p>'
               if info["warning"] else "")
    rater = info.get("rater")
    rater_line = "" if rater is None else (
        f"<dt>Rater</dt><dd>{html.escape(rater['model'])}: good photo or retake ({html.escape(rater['validation'])})"
        + ("; trained on the synthetic demo data: its verdicts mean nothing for real photos" if rater["synthetic_demo"]
           else "") + "</dd>")
    page = Template((STATIC / "index.html").read_text(encoding="utf-8"))
    return page.substitute(rater=rater_line,
        name=html.escape(info["name"]), kind=html.escape(info["kind"]), task=html.escape(info["task"]),
        backbone=html.escape(str(info["backbone"])), size=html.escape(str(info["image_size"])),
        data=html.escape(str(data)), figures=html.escape(figures or "none recorded"),
        band=html.escape(info["error_band"]), warning=warning,
        flags=html.escape("takes the 12 photo flags (tick them per photo)" if info["uses_flags"]
                          else "photo only"),
        max_photos=info["limits"]["max_photos"], max_mb=f"{info['limits']['max_bytes'] / 2 ** 20:.0f}",
        info=json.dumps(info).replace("</", "<\\/"))


def create_app(service: PhotoService) -> FastAPI:
    """The FastAPI application serving the page and the API for `service` (see the module doc)."""
    limits = service.limits
    app = FastAPI(title="pawtf", version=_version(),
                  description="Score, rank, explain and crop pet photos with one pawtf model. "
                              f"Model: {service.info['name']} ({service.info['task']}, {service.info['backbone']}).")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):
        """Refuse a request whose declared body is larger than the most it may hold, before reading it."""
        most = limits.max_photos * (limits.max_bytes + _FORM_SLACK)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > most:
            return JSONResponse({"detail": f"request of {int(length) / 2 ** 20:.0f} MB is over the limit of "
                                           f"{limits.max_photos} photos of {limits.max_bytes / 2 ** 20:.0f} MB"},
                                status_code=413)
        return await call_next(request)

    @app.exception_handler(LimitError)
    async def _too_much(request: Request, err: LimitError):
        return JSONResponse({"detail": str(err)}, status_code=413)

    @app.exception_handler(ValueError)
    async def _bad(request: Request, err: ValueError):
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return render_page(service.info)

    @app.get("/api/model", summary="What the model is")
    def model() -> dict:
        """Task, backbone, what it was trained on, its validation figures, the error band in words, the
        saliency methods it offers and the upload limits."""
        return service.info

    @app.post("/api/score", summary="Score and rank photos")
    def score(photos: list[UploadFile] = File(..., description="the photos (JPEG, PNG, WebP, ...)"),
              flags: str | None = Form(None, description="JSON: per photo, 12 values of 0 or 1 in the "
                                                         "order of /api/model's flags")) -> dict:
        """Every photo's predicted score, best first; a file that cannot be scored is listed last with
        its error while the others are scored."""
        return service.score(_read(photos, limits.max_bytes), _flags(flags, many=True))

    @app.post("/api/explain", summary="Saliency overlay of one photo")
    def explain(photo: UploadFile = File(...), method: str | None = Form(None),
                flags: str | None = Form(None, description="JSON: 12 values of 0 or 1")) -> dict:
        """Where the model looked: the photo with the method's map laid over it (a PNG data URL), its
        colours' meaning and one plain sentence."""
        (upload,) = _read([photo], limits.max_bytes)
        row = _flags(flags, many=False)
        return service.explain(upload, method, None if row is None else row[0])

    @app.post("/api/rate", summary="The rater's verdict on one photo, and why")
    def rate(photo: UploadFile = File(...)) -> dict:
        """Good or retake, by the rater the app was started with (--rater), with the inputs that pushed the
        verdict most (sharpness, brightness, ... by SHAP) where the rater was trained on named inputs."""
        (upload,) = _read([photo], limits.max_bytes)
        return service.rate(upload)

    @app.post("/api/crop", summary="Crop advice for one photo")
    def crop(photo: UploadFile = File(...), flags: str | None = Form(None)) -> dict:
        """Would a crop that keeps the whole pet raise the score? The advice in words, a preview with the
        candidate boxes, and the advised crop at full resolution (a data URL; null: keep the photo)."""
        (upload,) = _read([photo], limits.max_bytes)
        row = _flags(flags, many=False)
        return service.crop(upload, None if row is None else row[0])

    return app


def _version() -> str:
    import pawtf

    return getattr(pawtf, "__version__", "unknown")
