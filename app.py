"""Serve SpRAy runs in the browser.

    python app.py                    # the embedded demo and its second model (built into runs/ on first start)
    python app.py RUN [--port N]     # any run written by `python -m precompute run`
    python app.py RUN_A RUN_B ...    # several runs of the same data: the first is explored, all are compared
    python app.py RUNS_DIR           # every run in a folder of runs, by name
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_RUN = Path(__file__).resolve().parent / "runs" / "demo"
MANIFEST = "manifest.json"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SpRAy Studio: browse a SpRAy run in the browser.")
    parser.add_argument("runs", nargs="*", type=Path, metavar="RUN",
                        help=f"run directories, or one folder of runs (default: the embedded demo in {DEMO_RUN} and "
                             "its second model's run beside it, built on first start); the first run is the one "
                             "the pages explore, and the compare page shows them all")
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
        run_dirs = served_runs(args.runs) if args.runs else demo_runs()
        from spray_dash import create_app

        app = create_app(run_dirs)
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


def served_runs(paths):
    """The run directories to serve: the paths given, or, for one folder that is not a run, each run in it."""
    from precompute.errors import StoreError

    if len(paths) == 1 and paths[0].is_dir() and not (paths[0] / MANIFEST).is_file():
        found = sorted(child for child in paths[0].iterdir() if (child / MANIFEST).is_file())
        if not found:
            raise StoreError(f"{paths[0]} is neither a run (no {MANIFEST}) nor a folder of runs")
        return found
    return list(paths)


def demo_runs():
    """The embedded demo's two runs (its model, then its second model), built on first start."""
    from precompute.demo_run import (build_demo_comparison, build_demo_store, comparison_dir, demo_comparison_ready,
                                     demo_store_ready)

    def log(message):
        print(message, file=sys.stderr)

    if not demo_store_ready(DEMO_RUN):
        log(f"First start: building the demo store in {DEMO_RUN} (a few minutes, once) ...")
        build_demo_store(DEMO_RUN, log=log)
    second = comparison_dir(DEMO_RUN)
    if not demo_comparison_ready(second):
        log(f"Building the demo's second model and its run in {second} (a few minutes, once) ...")
        build_demo_comparison(DEMO_RUN, second, log=log)
    return [DEMO_RUN, second]


def serve(app, *, host: str, port: int, threads: int = 8) -> None:
    """Serve with waitress, a production WSGI server (Dash's own server is for development)."""
    from waitress import serve as waitress_serve

    waitress_serve(app.server, host=host, port=port, threads=threads, ident="SpRAy Studio",
                   max_request_body_size=32 * 1024 * 1024)


if __name__ == "__main__":
    sys.exit(main())
