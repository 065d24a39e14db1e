"""Serve a SpRAy run in the browser.

    python app.py                 # the embedded demo (built into runs/demo on first start)
    python app.py RUN [--port N]  # any run written by `python -m precompute run`
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_RUN = Path(__file__).resolve().parent / "runs" / "demo"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SpRAy Studio: browse a SpRAy run in the browser.")
    parser.add_argument("run", nargs="?", type=Path, default=None,
                        help=f"run directory (default: the embedded demo in {DEMO_RUN}, built on first start)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--debug", action="store_true", help="Dash debug mode with the development server "
                                                              "(never on a shared host)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads of the web server (default 8)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from precompute.errors import SprayError

    try:
        run_dir = args.run
        if run_dir is None:
            from precompute.demo_run import build_demo_store, demo_store_ready

            run_dir = DEMO_RUN
            if not demo_store_ready(run_dir):
                print(f"First start: building the demo store in {run_dir} (a few minutes, once) ...", file=sys.stderr)
                build_demo_store(run_dir, log=lambda message: print(message, file=sys.stderr))
        from spray_dash import create_app

        app = create_app(run_dir)
    except SprayError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.host not in LOCAL_HOSTS:
        print(f"WARNING: serving on {args.host}: anyone who can reach this machine on port {args.port} "
              "can read the dataset's images and the analysis.", file=sys.stderr)
    print(f"SpRAy Studio: http://{'127.0.0.1' if args.host in LOCAL_HOSTS else args.host}:{args.port}/",
          file=sys.stderr)
    if args.debug:
        app.run(host=args.host, port=args.port, debug=True)
    else:
        serve(app, host=args.host, port=args.port, threads=args.threads)
    return 0


def serve(app, *, host: str, port: int, threads: int = 8) -> None:
    """Serve with waitress, a production WSGI server (Dash's own server is for development)."""
    from waitress import serve as waitress_serve

    waitress_serve(app.server, host=host, port=port, threads=threads, ident="SpRAy Studio",
                   max_request_body_size=32 * 1024 * 1024)


if __name__ == "__main__":
    sys.exit(main())
