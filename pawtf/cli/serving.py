"""The app command: the web page for shelter staff (`pawtf.app`)."""

from __future__ import annotations

import ipaddress
import logging
import sys

from pawtf.cli.options import SUMMARIES, positive_int

__all__ = ["add_app"]

LOOPBACK = "127.0.0.1"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Once(logging.Filter):
    """Lets each distinct message through once (the demo-model note would otherwise repeat per request)."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


_ONCE = _Once()


def cmd_app(args) -> None:
    import uvicorn

    from pawtf.app import Limits, PhotoService, create_app

    print(f"pawtf app: loading {args.model} ...", file=sys.stderr)
    try:
        service = PhotoService(args.model, Limits(max_photos=args.max_photos, max_bytes=int(args.max_mb * 2 ** 20),
                                                  max_pixels=args.max_pixels), rater=args.rater)
    except ValueError as err:
        raise SystemExit(f"pawtf: error: {err}")
    info = service.info
    url = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{args.port}/"
    print(f"pawtf app: serving {info['name']} ({info['task']}, {info['backbone']}) at {url}  "
          f"(API: {url}docs; Ctrl+C stops it)", file=sys.stderr)
    if info["warning"]:
        print(info["warning"], file=sys.stderr)
        _ONCE.seen.add(info["warning"])
    for handler in logging.getLogger("pawtf").handlers:
        handler.addFilter(_ONCE)
    if not _is_loopback(args.host):
        print(f"pawtf app: warning: listening on {args.host}: anyone who can reach this machine can use the "
              "page and the API (there is no login)", file=sys.stderr)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level=args.log_level)


def add_app(sub) -> None:
    from pawtf.app import Limits

    defaults = Limits()
    p = sub.add_parser("app", help=SUMMARIES["app"], description=SUMMARIES["app"] + ". The model is loaded "
                       "once; the page and its JSON API (documented at /docs) work offline.")
    p.add_argument("--model", required=True, metavar="RUN_OR_SAVEDMODEL",
                   help="a run folder (every saliency method) or an exported model, e.g. saved_models/demo "
                        "(its latest version; Grad-CAM needs the run folder)")
    p.add_argument("--rater", metavar="RUN_OR_SAVEDMODEL",
                   help="a photo rater (trained with --task rater): each photo also gets good / retake, and "
                        "its reasons (blurry, too dark...) when the rater is a run trained with --head fc")
    p.add_argument("--host", default=LOOPBACK, help="address to listen on (default: %(default)s, this computer "
                   "only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=positive_int, default=8000, help="(default: %(default)s)")
    p.add_argument("--max-photos", type=positive_int, default=defaults.max_photos,
                   help="photos per request (default: %(default)s)")
    p.add_argument("--max-mb", type=float, default=defaults.max_bytes / 2 ** 20,
                   help="megabytes per photo (default: %(default)g)")
    p.add_argument("--max-pixels", type=positive_int, default=defaults.max_pixels,
                   help="pixels (width x height) per photo, read before decoding (default: %(default)s)")
    p.add_argument("--log-level", default="warning", choices=("warning", "info", "debug"),
                   help="the web server's log: info lists every request (default: %(default)s)")
    p.set_defaults(func=cmd_app)
