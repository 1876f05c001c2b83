"""``pawtf app``: a local web page for shelter staff, and the JSON API behind it.

Staff drop the photos they took of one animal; the page ranks them best first with their predicted
scores, marks the best, says how close two scores must be to count as equal (from the model's validation
RMSE), and for any photo shows where the model looked (a saliency overlay with its colour legend and one
plain sentence), the crop advice drawn on the photo with the cropped file to download, and, for models
that take them, the 12 photo flags as boxes to tick (the score updates). A panel says what the model is;
a model trained on the synthetic demo data says so at the top.

One concept per module: :mod:`pawtf.app.service` (the model, loaded once, answering in plain dicts: what
the page and the API return), :mod:`pawtf.app.uploads` (what a request may hold, and the uploads staged
under names the server makes up), :mod:`pawtf.app.pictures` (saliency overlays and their one-sentence
description) and :mod:`pawtf.app.server` (the FastAPI application: the page, its static files and the API
documented at ``/docs``).

Example:

>>> from pawtf.app import PhotoService, Upload, create_app
>>> service = PhotoService("saved_models/demo")                            # doctest: +SKIP
>>> service.score([Upload("rex.jpg", open("rex.jpg", "rb").read())])      # doctest: +SKIP
>>> app = create_app(service)   # serve with uvicorn.run(app)              # doctest: +SKIP
"""

from pawtf.app.service import APP_METHODS, LimitError, Limits, PhotoService, Upload

__all__ = ["APP_METHODS", "LimitError", "Limits", "PhotoService", "Upload", "create_app"]


def create_app(service: PhotoService):
    """The FastAPI application for `service` (:func:`pawtf.app.server.create_app`)."""
    from pawtf.app.server import create_app as create

    return create(service)
