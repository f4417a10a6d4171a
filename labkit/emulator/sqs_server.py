"""moto's SQS served on its own: ``python -m labkit.emulator.sqs_server [--host H] [--port P]``.

The queues, visibility timeouts, receive counts, redrive and the wire protocols are moto's
(its ``sqs`` backend app, unchanged); only the serving differs from ``python -m moto.server``:

- one service's app, not moto's all-services dispatcher, which looks the service up for
  every request (a ``stat`` of each of moto's ~170 service packages per call);
- no per-request access log;
- a cheaper clock for moto's per-message time checks (:func:`_use_a_cheaper_clock`).

Still werkzeug's threaded server, as moto's: a thread per connection suits long polls (one
per poller, and pollers scale with the function's concurrency). Werkzeug closes every
connection after its response; waitress keeps them alive and cost 5-20 % less CPU per call
here, but serves from a fixed pool of threads that long polls would hold, so it was not
taken.

Why it matters: in a queue cell the local SQS shares this machine's cores with the function
it feeds. Under 60 requests/s bursts ``moto.server`` took about one of the two cores and the
function's warm invocations slowed from 8.5 to 21.5 ms (a 30 s bursty cell, BatchSize 10,
window 0). Server CPU per send + receive + delete (``bench/sqs_server.py``): 15.3 ms under
``moto.server``, 8.8 ms here; with 30 messages waiting 21.9 -> 8.7 ms; 10 sends, a receive
of 10 and a delete 137 -> 40 ms. The same cell then ran its bursts' invocations in 13 ms.

Prints one JSON line ``{"endpoint_url": ...}`` on stdout once it accepts connections (so a
free port can be asked for with ``--port 0``), then serves until it is terminated.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from werkzeug.serving import WSGIRequestHandler, make_server


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass  # one line per call on stderr cost CPU and told nobody anything


def _use_a_cheaper_clock() -> None:
    """moto's SQS reads the time as ``unix_time()`` / ``unix_time_millis()`` (built from naive
    datetimes, ~13 us a call) for every message that a receive, send or attribute look-up
    scans, so a backlog made every call slower: with 30 messages waiting a send, receive and
    delete cost the server 15.8 ms of CPU with moto's clock and 8.7 ms with ``time.time()``
    (the same seconds since the epoch); 10 sends, a receive of 10 and a delete 124 -> 40 ms
    (``bench/sqs_server.py``). Only the no-argument form is replaced; a moto without these
    names is served as it is."""
    import time

    from moto.sqs import models

    slow_s, slow_ms = getattr(models, "unix_time", None), getattr(models, "unix_time_millis", None)
    if slow_s is None or slow_ms is None:
        return
    models.unix_time = lambda dt=None: time.time() if dt is None else slow_s(dt)
    models.unix_time_millis = lambda dt=None: time.time() * 1e3 if dt is None else slow_ms(dt)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m labkit.emulator.sqs_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (the default)")
    args = parser.parse_args(argv)

    from moto.server import create_backend_app

    _use_a_cheaper_clock()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server(args.host, args.port, create_backend_app("sqs"), threaded=True,
                         request_handler=_Quiet)  # fmt: skip
    print(json.dumps({"endpoint_url": f"http://{args.host}:{server.server_port}"}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
