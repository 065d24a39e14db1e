"""Log lines and warnings are written above the progress bars, never into them."""
import io
import re
import sys
import warnings

from precompute.progress import bar_safe, progress_bar, warnings_to


def pieces(text):
    """What lies between carriage returns and newlines, without cursor movements."""
    return [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", piece) for piece in re.split(r"[\r\n]", text)]


def test_a_log_line_written_while_a_bar_is_open_gets_a_line_of_its_own(monkeypatch):
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    log = bar_safe(lambda message: print(message, file=sys.stderr))
    assert bar_safe(log) is log, "wrapping twice changes nothing"
    with progress_bar(total=10, desc="images", file=sys.stderr, mininterval=0) as bar:
        bar.update(3)
        log("skipped a.png: cannot decode image")
        with warnings_to(log):
            warnings.warn("the fast LRP path cannot reproduce zennit", RuntimeWarning)
        bar.update(3)
    text = stderr.getvalue()
    assert "skipped a.png: cannot decode image" in pieces(text)
    assert "warning: the fast LRP path cannot reproduce zennit" in pieces(text)
    assert any(piece.startswith("images:  60%") for piece in pieces(text)), "the bar is drawn again"
