r"""Volatile tokens out, in linear time and bounded work per message.

Two attempts at the same thing rarely produce byte-identical text: outputs
carry timestamps, request ids, addresses and timings. ``normalize_text``
replaces those with placeholders and collapses white space; ``fingerprint``
does the same on a bounded window of a long text, so a 1 MB tool output costs
what a 4 KB one does.

How it stays fast and linear:

- white space is collapsed first by ``str.split``/``str.join`` (C speed), so
  the patterns below only ever see single spaces;
- every volatile token starts at a hex digit or a weekday's capital, and the one
  pattern (``_VOLATILE``) starts with that character class: the regex engine
  skips every other position in C, and mid-word positions fail at once on a
  two-character look-behind;
- no two unbounded quantifiers can match the same characters, so no input
  makes the engine backtrack more than a constant number of steps per
  position (the old ``took\s*:?\s*`` pattern was quadratic on
  ``"took" + " " * N``); words before a spoken duration are checked on the
  ten characters before a match, not by the pattern.
"""

from __future__ import annotations

import hashlib
import re

WINDOW = 2048
"""Characters normalized at each end of a long text; ``fingerprint`` summarizes the middle."""

_SPOKEN_AFTER = re.compile(r"(?<![A-Za-z])(?i:took|elapsed|latency|duration|in|after)(?::|: | )\Z")
"""Words after which a number with a spoken unit is a measured duration (``took 3 seconds``)."""

_VOLATILE_BODY = (
    # A UUID, or a long hex id (request ids, hashes, trace ids); ``_replace`` keeps
    # ids without both a letter and a digit (long plain numbers: amounts, card numbers).
    r"[0-9a-fA-F]{7}(?:(?P<uuid>-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
    r"|(?P<hexid>[0-9a-fA-F]{8,}\b))"
    # HTTP dates: "Sat, 28 Nov 2026 17:50:31 GMT".
    r"|(?<=[MTWFS])(?P<http>(?:on|ue|hu|ed|ri|at|un), \d{1,2} "
    r"[A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d(?: GMT)?\b)"
    # The rest start with a decimal digit. A number followed by a space and a
    # character that starts no unit (a line number, a count) is rejected at once.
    r"|(?<=\d)(?! [^m\u00b5unsMS\u017f])(?:"
    # A date with a time of day (ISO 8601 and the common "2024-05-20 10:00:01" form).
    r"(?P<time>\d{3}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:[.,]\d{1,9})?)?"
    r"(?: ?(?:Z|UTC|GMT|[+-]\d\d:?\d\d))?(?![\d:]))"
    # A time of day with fractional seconds is a clock reading, not data.
    r"|(?P<clock>(?<![:].)\d?:\d\d:\d\d[.,]\d{1,9}\b)"
    r"|(?P<address>(?<=0)x[0-9a-fA-F]+\b)"
    # Timings: "12ms", "1.5s", "0.3 s"; and, after a word of ``_SPOKEN_AFTER``
    # (checked by ``_replace``), "took 3 seconds", "elapsed: 2 minutes".
    r"|\d*(?:\.\d+)? ?(?:(?P<duration>(?:ms|\u00b5s|us|ns|s)\b)"
    r"|(?P<spoken>(?i:milliseconds?|seconds?|secs?|minutes?|mins?)\b))"
    r")"
)
"""The volatile tokens, after their first character (matched by the class before)."""

_VOLATILE = re.compile(
    # The first character is consumed by the class (the engine's fast skip), then the
    # look-behind checks that it starts a word: the character before it is no letter or
    # digit (an underscore may come before: "req_8f14e45fceea167a").
    r"[0-9a-fA-FMTWS](?<![0-9A-Za-z].)(?:" + _VOLATILE_BODY + ")"
)
_VOLATILE_QUICK = re.compile(
    # ``_VOLATILE`` without the hex letters a-f/A-E in its first class: in prose and
    # code a third of all characters are those letters, and each one costs the
    # engine a match attempt. A token that starts with one of them is a UUID or a
    # hex id; where one may start, a signal group matches instead, and the caller
    # tries ``_VOLATILE`` at the start of that hex run (a UUID's "-hhhh-" after 8 hex
    # characters; a digit right after a hex letter in a run of 16 hex characters: a
    # hex id's first digit).
    r"[0-9MTWSF-](?:"
    r"(?<=-)(?<=[0-9a-fA-F]{8}-)(?=[0-9a-fA-F]{4}-)(?P<letter_uuid>)"
    r"|(?<=[a-fA-F]\d)(?:(?<=[0-9a-fA-F]{9})|(?=[0-9a-fA-F]{7}))(?P<letter_hexid>)"
    r"|(?<=[0-9MTWSF])(?<![0-9A-Za-z].)(?:" + _VOLATILE_BODY + "))"
)
_SIGNALS = frozenset({"letter_uuid", "letter_hexid"})
_HEX_DIGITS = "0123456789abcdefABCDEF"
_HEX_RUN = re.compile(r"[0-9a-fA-F]*")
_PLACEHOLDERS = {
    "uuid": "<uuid>",
    "hexid": "<hex>",
    "http": "<time>",
    "time": "<time>",
    "clock": "<time>",
    "address": "<hex>",
    "duration": "<duration>",
    "spoken": "<duration>",
}
_DIGITS = frozenset("0123456789")
_ASCII_DIGITS = "0123456789"
_ASCII_SPACES = "\n" + "".join(
    character
    for character in map(chr, range(128))
    if character.isspace() and character not in " \n"
)
"""White space that ``str.split`` cuts at, besides the blank (the newline first: the usual one)."""
_DIGIT = re.compile(r"\d")


def normalize_text(text: str) -> str:
    """Remove what changes between identical attempts: volatile tokens and white-space runs.

    Linear in the length of ``text`` (see the module's docstring). For a long
    text of which only a bounded part matters, use ``fingerprint``.

    Args:
        text: A tool output or a reply.

    Returns:
        The text with timestamps, UUIDs, hex addresses and ids, and durations
        replaced by placeholders, and white-space runs collapsed.

    Example:
        >>> normalize_text("ok  at 2026-11-28T17:50:31Z in 12ms")
        'ok at <time> in <duration>'
        >>> normalize_text("job 3f2a9c0e-1b2d-4c5e-8f90-a1b2c3d4e5f6 at 0x7f3a2c")
        'job <uuid> at <hex>'
        >>> normalize_text("status: running, 3 of 10 done")
        'status: running, 3 of 10 done'
    """
    if not text.isascii():
        collapsed = " ".join(text.split())
        if _DIGIT.search(collapsed) is None:
            return collapsed  # every volatile token has a digit: nothing to replace
    else:
        # The same two checks, with substring searches (C's memchr) instead of a split
        # and a pattern: an argument or a one-line reply usually has nothing to do.
        collapsed = text if _is_collapsed(text) else " ".join(text.split())
        if not _has_digit(collapsed):
            return collapsed
    return _substitute(collapsed)


def _substitute(collapsed: str) -> str:
    """``_VOLATILE.sub(_replace, collapsed)``, mostly by the quicker pattern."""
    parts: list[str] = []
    done = 0  # the text before is settled
    floor = 0  # no hex run that starts before this is left to examine
    position = 0  # where the quick pattern goes on
    while True:
        for match in _VOLATILE_QUICK.finditer(collapsed, position):
            if match.lastgroup in _SIGNALS:
                break
            parts += (collapsed[done : match.start()], _replace(match))
            done = match.end()
        else:
            break
        # A UUID or a hex id may start with a hex letter at the start of this hex run:
        # try the full pattern there (its look-behinds see what comes before).
        signal = match.start()
        low = max(done, floor)
        start = low + len(collapsed[low:signal].rstrip(_HEX_DIGITS))
        token = _VOLATILE.match(collapsed, start)
        if token is not None:
            parts += (collapsed[done:start], _replace(token))
            position = floor = done = token.end()
        elif collapsed[signal] == "-":
            position = floor = signal + 1  # a hex group after it may start a token
        else:
            # The rest of this run is inside a word: no token starts there.
            run = _HEX_RUN.match(collapsed, signal)  # always matches, if only the digit
            position = floor = run.end() if run is not None else signal + 1
    if not parts:
        return collapsed
    parts.append(collapsed[done:])
    return "".join(parts)


def _is_collapsed(text: str) -> bool:
    # True when " ".join(text.split()) == text, for an ASCII text.
    if "  " in text or text[:1] == " " or text[-1:] == " ":
        return False
    for space in _ASCII_SPACES:  # noqa: SIM110 (a loop: cheaper than all() over a generator)
        if space in text:
            return False
    return True


def _has_digit(text: str) -> bool:
    for digit in _ASCII_DIGITS:  # noqa: SIM110 (a loop: cheaper than any() over a generator)
        if digit in text:
            return True
    return False


def fingerprint(text: str, *, window: int = WINDOW, exact_middle: bool = False) -> str:
    r"""Return ``text`` normalized with bounded work: its two ends, and a summary of the rest.

    A text of up to ``2 * window`` characters is normalized whole. A longer one
    keeps its first and last ``window`` characters (cut at white space, so no
    token is split), normalized, with the middle replaced by its line count:
    ``"<head> <… N lines …> <tail>"``. The ends are where outputs differ
    between attempts (the command's first lines, the error, the summary, the
    exit code); a line count does not change with the timestamps and timings
    inside a log. Two long outputs that differ only inside the middle, in the
    same number of lines, compare equal: the price of never reading 1 MB.

    Args:
        text: A tool output, a reply or an argument.
        window: Characters kept at each end.
        exact_middle: Summarize the middle by a hash of its exact text rather
            than its line count (for tool-call arguments, whose every character
            is what the model asked for).

    Returns:
        A string that equal attempts share.

    Example:
        >>> fingerprint("one two three\n" * 4 + "last line", window=20)
        'one two three one <… 2 lines …> two three last line'
    """
    if len(text) <= 2 * window:
        return normalize_text(text)
    head, middle, tail = _split_at_white_space(text, window)
    if exact_middle:
        digest = hashlib.blake2b(middle.encode("utf-8", "surrogatepass"), digest_size=8)
        summary = f"<… {digest.hexdigest()} …>"
    else:
        summary = f"<… {middle.count(chr(10))} lines …>"
    return f"{normalize_text(head)} {summary} {normalize_text(tail)}"


def _split_at_white_space(text: str, window: int) -> tuple[str, str, str]:
    # Cut at the last white space inside the window (within 64 characters of its
    # edge), so that a timestamp or an id at the edge stays whole on one side.
    margin = min(64, window // 2)
    head_end = _last_space(text, window - margin, window) or window
    tail_start = _first_space(text, len(text) - window, len(text) - window + margin)
    tail_start = tail_start if tail_start is not None else len(text) - window
    return text[:head_end], text[head_end:tail_start], text[tail_start:]


def _last_space(text: str, start: int, end: int) -> int | None:
    found = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
    return found if found > 0 else None


def _first_space(text: str, start: int, end: int) -> int | None:
    found = [at for at in (text.find(" ", start, end), text.find("\n", start, end)) if at >= 0]
    return min(found) if found else None


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup or ""
    if kind == "spoken":
        start = match.start()
        before = match.string[max(0, start - 10) : start]
        return "<duration>" if _SPOKEN_AFTER.search(before) else match[0]
    if kind == "hexid":
        token = match[0]
        if token.isdigit() or _DIGITS.isdisjoint(token):
            return token
    return _PLACEHOLDERS[kind]
