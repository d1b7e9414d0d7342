"""The runbook: content, escaping, pooling against a known truth, the CLI, a real browser."""

from __future__ import annotations

import csv
import html
import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.rootdata import T0, sample_rows, ts, write_metrics
from tracker import runbook
from tracker.contract import SHORT
from tracker.options import SettingsError
from tracker.runbook import main, parser
from tracker.runbook_data import INTERVAL_COLUMNS, load
from tracker.runbook_render import GRAFANA_UID
from tracker.samples import SampleSource
from tracker.settings import resolve
from tracker.store import COLUMNS, HEADER
from tracker.timeparse import TimeParser, parse_zone

REPO = Path(__file__).resolve().parent.parent
FULL = HEADER  # the tracker's own header, intervals and verdict included
V1 = HEADER[: HEADER.index(INTERVAL_COLUMNS[0])]  # before intervals and verdicts
assert {*INTERVAL_COLUMNS, "verdict"} <= set(FULL) and "verdict" not in V1


def row(seconds: float, rule: str = "creative_min", old="0.22", new="0.24", actor="Lubit",
        d=None, verdict="good", n=150, confounded=False, tz=None) -> dict[str, str]:
    """One rules_effects.csv row; d maps a signal's short name to (Δ, lo, hi)."""
    d = d or {}
    r = {"rule_ts": ts(seconds) if tz is None else ts(seconds, tz=tz), "actor": actor,
         "rule": rule, "old": str(old), "new": str(new), "pre_s": "30", "post_s": "30",
         "guard_s": "1", "confounded": "1" if confounded else "0", "verdict": verdict}
    for s in SHORT:
        delta, lo, hi = d.get(s, (0.0, -0.01, 0.01))
        r.update({f"pre_{s}": "0.5", f"post_{s}": repr(0.5 + delta), f"d_{s}": repr(delta),
                  f"d_{s}_lo": repr(lo), f"d_{s}_hi": repr(hi),
                  f"n_pre_{s}": str(n), f"n_post_{s}": str(n)})
    return r


def write_effects(root: Path, rows: list[dict[str, str]], header: list[str] = FULL) -> None:
    p = root / "logs" / "rules_effects.csv"
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, header, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def write_notes(root: Path, rows: list[dict[str, str]], notes: list[str]) -> None:
    p = root / "controls" / "rules_history.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        for r, note in zip(rows, notes):
            f.write(json.dumps({"ts": r["rule_ts"], "actor": r["actor"], "rule": r["rule"],
                                "old": float(r["old"]), "new": float(r["new"]),
                                "note": note}) + "\n")


def run(root: Path, out: Path, *extra: str) -> tuple[str, str]:
    assert main(["--root", str(root), "--out", str(out), *extra]) == 0
    return ((out / "runbook.md").read_text(encoding="utf-8"),
            (out / "runbook.html").read_text(encoding="utf-8"))


def section(text: str, start: str, end: str = "\n## ") -> str:
    i = text.index(start)
    j = text.find(end, i + len(start))
    return text[i: j if j >= 0 else len(text)]


class Text(HTMLParser):
    """The page's visible text and its elements, as a browser's DOM dump gives them."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("style", "title", "script"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("style", "title", "script"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def page_text(html: str) -> Text:
    t = Text()
    t.feed(html)
    return t


# -------------------------------------------------------------- content

MIXED = [  # (seconds after T0, rule, zone) in file order, not time order
    (600, "creative_min", "+09:00"), (0, "creative_min", "UTC"), (1200, "risk_max", "+09:00"),
    (300, "creative_min", "-05:00"), (900, "risk_max", "UTC"), (60, "loop_rate_hz", "+09:00"),
]


def mixed_rows() -> list[dict[str, str]]:
    return [row(s, rule=r, tz=parse_zone(z), old=str(0.2 + i / 100), new=str(0.21 + i / 100))
            for i, (s, r, z) in enumerate(MIXED)]


def test_every_rule_and_change_appears_newest_first(tmp_path):
    rows = mixed_rows()
    write_effects(tmp_path, rows)
    md, html = run(tmp_path, tmp_path / "out")
    text = page_text(html).text
    for rule in {r["rule"] for r in rows}:
        md_part = section(md, f"## Rule {rule.replace('_', chr(92) + '_')}")
        html_part = section(text, f"Rule {rule}", "Rule ")
        mine = [r for r in rows if r["rule"] == rule]
        newest_first = sorted(mine, key=lambda r: datetime.fromisoformat(r["rule_ts"]),
                              reverse=True)
        for part in (md_part, html_part):
            at = [part.index(r["rule_ts"]) for r in newest_first]
            assert at == sorted(at), (rule, [r["rule_ts"] for r in newest_first])
        assert f"Changes, newest first ({len(mine)})" in md_part


def test_each_delta_with_its_interval_and_verdict(tmp_path):
    write_effects(tmp_path, [row(0, d={"phase": (0.031, 0.012, 0.050)}, verdict="warning"),
                             row(100, verdict="inconclusive")])
    md, html = run(tmp_path, tmp_path / "out")
    assert "+0.031 [+0.012, +0.050]" in md
    assert '<td class="num">+0.031<div class="ci">[+0.012, +0.050]</div></td>' in html
    for doc in (md, page_text(html).text):
        assert "warning" in doc and "inconclusive" in doc
    assert 'class="v v-warning"' in html
    assert '<span class="v">inconclusive</span>' in html  # a state it does not know: text


def test_confounded_and_unreliable_are_marked(tmp_path):
    rows = [row(0, confounded=True), row(100)]
    rows[1]["n_pre_risk"] = "12"
    write_effects(tmp_path, rows)
    md, html = run(tmp_path, tmp_path / "out")
    lines = [line for line in md.splitlines() if line.startswith(f"| {rows[0]['rule_ts']}")]
    assert "confounded" in lines[0] and "unreliable" not in lines[0]
    lines = [line for line in md.splitlines() if line.startswith(f"| {rows[1]['rule_ts']}")]
    assert "unreliable: risk\\_band |" in lines[0] and "confounded" not in lines[0]


NASTY = ["<script>alert(1)</script>", "| x |", "*bold* [a](http://e.example) `c` # h",
         "a\\|b", "<img src=x onerror=alert(2)>"]


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_names_actors_and_notes_are_escaped(tmp_path):
    rows = [row(60 * i, rule=name, actor=name) for i, name in enumerate(NASTY)]
    write_effects(tmp_path, rows)
    write_notes(tmp_path, rows, [f"note {n}\nsecond line" for n in NASTY])
    md, page_html = run(tmp_path, tmp_path / "out")
    # Markdown: every table row has the header's cells; no raw HTML gets through.
    for block in re.findall(r"(?:^\|.*\n)+", md, re.M):
        lines = block.splitlines()
        assert {unescaped_pipes(line) for line in lines} == {unescaped_pipes(lines[0])}
    assert "<script" not in md and "<img" not in md
    # Read back as Markdown reads it (a backslash makes the next character literal, then
    # entities), each heading is the name as it was typed.
    headings = re.findall(r"^## Rule (.*)$", md, re.M)
    assert sorted(html.unescape(re.sub(r"\\(.)", r"\1", x)) for x in headings) == sorted(NASTY)
    # HTML: no element but ours, and every name shows as the text it is.
    page = page_text(page_html)
    assert {t for t, _ in page.tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "nav", "ul",
        "li", "a", "section", "div", "table", "thead", "tbody", "tr", "th", "td", "span",
        "figure", "figcaption", "svg", "text", "rect", "line", "path", "circle"}
    shown = " ".join(page.text.split())  # as a browser lays out white space
    for name in NASTY:
        assert f"Rule {name}" in shown
        assert f"note {name} second line" in shown


def test_markdown_escaping_can_fail():
    """The check above would see an unescaped name: a row split by a bare pipe."""
    good = "| a | b\\|c |"
    bad = "| a | b|c |"
    assert unescaped_pipes(good) == 3 and unescaped_pipes(bad) == 4


@pytest.mark.parametrize("header", [V1, COLUMNS], ids=["v1", "19 columns"])
def test_older_effects_file_still_gives_a_runbook(tmp_path, header):
    write_effects(tmp_path, [row(0, d={"phase": (0.031, 0.012, 0.050)}), row(100)], header)
    md, html = run(tmp_path, tmp_path / "out")
    assert "has no interval or verdict columns" in md
    line = next(x for x in md.splitlines() if x.startswith(f"| {ts(0)}"))
    assert "+0.031 " in line and "[" not in line.replace("[view]", "")
    assert "| — |" in line
    assert "Not pooled: the effects file has no intervals." in md
    assert "has no interval or verdict columns" in page_text(html).text


def test_no_effects_file_yet(tmp_path):
    md, _ = run(tmp_path, tmp_path / "out")
    assert "does not exist yet" in md


# -------------------------------------------------------------- what the rule does


def simulate(root: Path, rnd: random.Random, k: int, beta: float, tau: float = 0.0,
             rule: str = "creative_min") -> None:
    """k changes of `rule` whose Δ of creative_band is beta per unit of change (plus, with
    tau > 0, a per-change slope spread), each measured with a known se."""
    rows = []
    for i in range(k):
        size = rnd.choice([0.01, 0.02, 0.03, 0.05]) * rnd.choice([1, -1])
        se = rnd.uniform(0.002, 0.01)
        delta = (beta + rnd.gauss(0, tau)) * size + rnd.gauss(0, se)
        rows.append(row(600 * i, rule=rule, old="0.3", new=repr(0.3 + size),
                        d={"creative": (delta, delta - 1.96 * se, delta + 1.96 * se)}))
    write_effects(root, rows)


def response(root: Path, signal: str = "creative_band"):
    rb = load(resolve(str(root), env={}), 0)
    rule = rb.gateways[0].rules[0]
    return next(r for r in rule.responses if r.signal == signal)


def coverage(tmp_path: Path, k: int, tau: float, seeds: int = 200) -> tuple[float, list[str]]:
    beta, hits, methods = 0.8, 0, []
    for seed in range(seeds):
        root = tmp_path / str(seed)
        simulate(root, random.Random(seed), k, beta, tau)
        r = response(root)
        p = r.both
        truth = beta * r.step
        hits += p.lo <= truth <= p.hi
        methods.append(p.method)
        shutil.rmtree(root)
    return hits / seeds, methods


def test_pooled_interval_covers_the_true_response_about_95_percent(tmp_path):
    share, methods = coverage(tmp_path, k=8, tau=0.0)
    assert 0.90 <= share <= 0.99, share
    assert methods.count("fixed effect") > 0.8 * len(methods)


def test_random_effects_when_changes_disagree_keeps_coverage(tmp_path):
    # The slope itself varies from change to change by more than each change's noise.
    share, methods = coverage(tmp_path, k=20, tau=0.4)
    assert 0.90 <= share <= 0.99, share
    assert sum(m.startswith("random effects") for m in methods) > 0.8 * len(methods)


def test_confounded_unreliable_and_text_values_are_left_out(tmp_path):
    rows = []
    for i, size in enumerate([0.01, 0.02, -0.01]):
        delta = 2 * size  # +0.02 per +0.01, exactly
        rows.append(row(600 * i, old="0.3", new=repr(0.3 + size),
                        d={"creative": (delta, delta - 0.004, delta + 0.004)}))
    rows += [row(5000, old="0.3", new="0.31", confounded=True, d={"creative": (9, 8, 10)}),
             row(6000, old="0.3", new="0.31", n=20, d={"creative": (9, 8, 10)}),
             row(7000, old="low", new="high", d={"creative": (9, 8, 10)})]
    write_effects(tmp_path, rows)
    r = response(tmp_path)
    assert r.used == 3
    assert r.excluded == {"confounded": 1, "unreliable": 1, "not a numeric change": 1}
    assert r.step == 0.01 and r.both.value == pytest.approx(0.02)
    md, _ = run(tmp_path, tmp_path / "out")
    assert "| +0.0200 [+0.0184, +0.0216] | from 3 changes, fixed effect, I² 0%" in md
    rows[2]["confounded"] = "1"
    write_effects(tmp_path, rows)
    md, _ = run(tmp_path, tmp_path / "out")
    assert "too few changes (2 usable, at least 3 needed)" in md


def test_raising_and_lowering_pooled_apart_when_they_differ(tmp_path):
    rnd = random.Random(5)
    rows = []
    for i in range(8):
        size = 0.02 if i % 2 else -0.02
        delta = (0.04 if size > 0 else 0.0) + rnd.gauss(0, 0.002)
        rows.append(row(600 * i, old="0.3", new=repr(0.3 + size),
                        d={"creative": (delta, delta - 0.004, delta + 0.004)}))
    write_effects(tmp_path, rows)
    r = response(tmp_path)
    assert r.split
    assert r.up.value == pytest.approx(0.02, abs=0.003)  # per +0.01
    assert r.down.value == pytest.approx(0.0, abs=0.003)
    md, _ = run(tmp_path, tmp_path / "out")
    assert "### What the rule does, per +0.01 of creative\\_min" in md
    assert "| creative_band | raising | +0.0186 [+0.0176, +0.0196] |" in md
    assert "| creative_band | lowering, per −0.01 | +0.0001 [-0.0009, +0.0011] |" in md
    assert "raising and lowering differ (p &lt; 0.001), so pooled apart" in md  # md: "<"
    # Phase_diff did the same both ways (nothing): pooled together, and said so.
    assert "raising and lowering agree" in md


def test_patterns_consistently_good_and_consistently_warning(tmp_path):
    up, down = ("0.2", "0.3"), ("0.3", "0.2")
    rows = [row(600 * i, rule="creative_min", old=o, new=n, verdict=v) for i, (o, n, v) in
            enumerate([(*up, "good"), (*up, "good"), (*up, "good"), (*down, "warning")])]
    rows += [row(10000 + 600 * i, rule="risk_max", old=o, new=n, verdict=v, confounded=c)
             for i, (o, n, v, c) in enumerate([
                 (*up, "warning", False), (*up, "warning", False), (*up, "warning", False),
                 (*up, "no_change", False), (*up, "good", True), (*down, "good", False)])]
    rows += [row(20000 + 600 * i, rule="loop_rate_hz", old=o, new=n, verdict=v)
             for i, (o, n, v) in enumerate([(*up, "good"), (*up, "good"), (*up, "mixed"),
                                            (*up, "no_change")])]
    rows += [row(30000 + 600 * i, rule="mode", old="slow", new="fast", verdict="good")
             for i in range(2)]
    write_effects(tmp_path, rows)
    md, html = run(tmp_path, tmp_path / "out")
    fav = section(md, "## Favourable patterns")
    assert "set mode to fast (e.g. slow → fast): good in 2 of 2 changes" in fav
    avoid = section(md, "## Patterns to avoid")
    assert "raise creative\\_min (e.g. 0.2 → 0.3): good in 3 of 3 changes" in fav
    assert "risk" not in fav and "lower" not in fav  # one good change is not a pattern
    assert "raise risk\\_max (e.g. 0.2 → 0.3): warning in 3 of 4 changes" in avoid
    assert "creative" not in avoid
    assert "loop" not in fav  # good in 2 of 4: not consistently


# -------------------------------------------------------------- links, CLI


def test_grafana_links_around_each_change(tmp_path, monkeypatch):
    uids = {json.loads(p.read_text())["uid"] for p in (REPO / "grafana/dashboards").glob("*.json")}
    assert GRAFANA_UID in uids
    write_effects(tmp_path, [row(0)])
    t0_ms = int(T0.timestamp() * 1000)
    monkeypatch.setenv("LUMEN_GRAFANA_URL", "https://grafana.example/g/")
    md, html = run(tmp_path, tmp_path / "out")
    want = (f"https://grafana.example/g/d/{GRAFANA_UID}?from={t0_ms - 150_000}"
            f"&to={t0_ms + 150_000}&var-rule=creative_min")
    assert f"[view]({want})" in md
    assert f'href="{want.replace("&", "&amp;")}"' in html
    md, _ = run(tmp_path, tmp_path / "out", "--grafana-url", "http://g:3000")
    assert f"(http://g:3000/d/{GRAFANA_UID}?from=" in md
    write_effects(tmp_path, [row(0, rule="| x (y) |&")])
    md, _ = run(tmp_path, tmp_path / "out")
    assert "&var-rule=%7C%20x%20%28y%29%20%7C%26)" in md
    uids_vars = json.loads((REPO / "grafana/dashboards/rule-history.json").read_text())
    assert "rule" in [v["name"] for v in uids_vars["templating"]["list"]]


@pytest.mark.parametrize("args, message", [
    (["--grafana-url", "javascript:alert(1)"], "Grafana URL 'javascript:alert(1)' must be "
     "http(s)://host[:port][/path] without spaces, quotes or brackets"),
    (["--grafana-url", "http://x/a b"], "Grafana URL 'http://x/a b' must be "
     "http(s)://host[:port][/path] without spaces, quotes or brackets"),
    (["--charts-per-rule", "-1"], "--charts-per-rule must be 0 or more"),
    (["--poll", "0", "--watch"], "--poll must be a positive number of seconds"),
    (["--serve", "8088"], "--serve needs --watch (a page that stays current)"),
    (["--naive-tz", "Mars/Base"], "unknown time zone 'Mars/Base' (use +HH:MM or an IANA name)"),
    (["--root", "no/such/dir"], "data root no/such/dir is not a directory (--root, $LUMEN_ROOT)"),
])
def test_bad_settings_exit_2(tmp_path, args, message, capsys):
    assert main(["--root", str(tmp_path), "--out", str(tmp_path / "o"), *args]) == 2
    assert capsys.readouterr().err == f"lumen-runbook: error: {message}\n"


def test_no_pictures_into_a_new_directory_and_what_was_written(tmp_path, capsys):
    write_effects(tmp_path, [row(0), row(60, rule="risk_max")])
    out = tmp_path / "new" / "dir"
    md, html = run(tmp_path, out, "--charts-per-rule", "0")
    assert "<svg class=\"change\"" not in html and "<svg class=\"response\"" in html
    assert capsys.readouterr().out == (f"wrote {out / 'runbook.md'} and {out / 'runbook.html'}: "
                                       "2 rules, 2 changes\n")


def test_a_port_taken_exits_1_and_says_where(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--root", str(tmp_path), "--out", str(tmp_path / "o"), "--watch",
                     "--serve", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lumen-runbook: error: cannot serve on 127.0.0.1:{port}: [Errno 98]")


def test_foreign_effects_file_exits_1(tmp_path, capsys):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "rules_effects.csv").write_text("a,b\n1,2\n")
    assert main(["--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    p = tmp_path / "logs" / "rules_effects.csv"
    assert capsys.readouterr().err.startswith(f"lumen-runbook: error: {p}:1: ")


def test_root_from_environment_and_interrupt(tmp_path, monkeypatch):
    write_effects(tmp_path, [row(0, rule="from_env")])
    monkeypatch.setenv("LUMEN_ROOT", str(tmp_path))
    assert main(["--out", str(tmp_path / "o")]) == 0
    assert "from\\_env" in (tmp_path / "o" / "runbook.md").read_text()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("tracker.runbook.generate", interrupted)
    assert main(["--out", str(tmp_path / "o")]) == 130


def in_steps(monkeypatch, *steps) -> list[float]:
    """--watch's loop run in this process: each of its sleeps runs the next step instead,
    and the one after the last step interrupts it. Returns the sleeps asked for."""
    todo = iter(steps)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        step = next(todo, None)
        if step is None:
            raise KeyboardInterrupt
        step()

    monkeypatch.setattr(runbook.time, "sleep", sleep)
    return slept


def test_watch_rewrites_when_effects_change_and_only_then(tmp_path, monkeypatch, capsys):
    write_effects(tmp_path, [row(0, rule="first_rule")])
    out, beat = tmp_path / "out", tmp_path / "beat"
    md = out / "runbook.md"
    generated = []
    real_generate = runbook.generate
    monkeypatch.setattr(runbook, "generate",
                        lambda *a: generated.append(1) or real_generate(*a))

    def first():
        assert "first\\_rule" in md.read_text() and beat.exists()
        write_effects(tmp_path, [row(0, rule="first_rule"), row(60, rule="second_rule")])
        beat.unlink()

    def second():
        assert "second\\_rule" in md.read_text() and len(generated) == 2
        assert '<svg class="change"' not in (out / "runbook.html").read_text()  # 0 asked
        assert not list(out.glob(".*.tmp"))  # written by rename, no copy left behind
        assert beat.exists()  # touched at every check
        beat.unlink()

    def unchanged():
        assert len(generated) == 2 and beat.exists()  # no change, nothing written again
        (tmp_path / "logs" / "rules_effects.csv").write_text("a,b\n1,2\n")

    def broken():
        assert len(generated) == 3 and "second\\_rule" in md.read_text()  # old page kept

    slept = in_steps(monkeypatch, first, second, unchanged, broken)
    assert main(["--root", str(tmp_path), "--out", str(out), "--watch", "--poll", "0.25",
                 "--heartbeat", str(beat), "--charts-per-rule", "0"]) == 130
    assert slept == [0.25] * 5
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [f"lumen-runbook: wrote {md} and runbook.html (1 rules, 1 changes)",
                       f"lumen-runbook: wrote {md} and runbook.html (2 rules, 2 changes)"]
    effects = tmp_path / "logs" / "rules_effects.csv"
    assert err[2].startswith(f"lumen-runbook: error: {effects}:1: ")  # and the loop went on
    assert len(err) == 3


def test_serve_gives_the_current_page_and_nothing_else(tmp_path, monkeypatch, capsys):
    write_effects(tmp_path, [row(0, rule="served_rule")])
    out = tmp_path / "not" / "yet" / "out"
    servers = []
    real_serve = runbook.serve
    monkeypatch.setattr(runbook, "serve", lambda *a: servers.append(real_serve(*a)) or
                        servers[-1])
    threads = set(threading.enumerate())

    def check():
        (server,) = servers
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        (thread,) = set(threading.enumerate()) - threads
        assert thread.daemon  # an interrupted runbook exits without waiting for it
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + "/runbook.html", timeout=5) as r:
            assert "served_rule" in r.read().decode("utf-8")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/", timeout=5)  # no directory listing
        assert e.value.code == 404

    in_steps(monkeypatch, check)
    try:
        assert main(["--root", str(tmp_path), "--out", str(out), "--watch",
                     "--serve", "127.0.0.1:0"]) == 130
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert len(servers) == 1
    port = servers[0].server_address[1]
    assert f"lumen-runbook: serving {out} on http://127.0.0.1:{port}/runbook.html\n" in (
        capsys.readouterr().err)


def test_serve_settings(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SettingsError, match="--serve 'eighty': want PORT or ADDR:PORT"):
        runbook.serve(out, "eighty")
    out.mkdir()
    server = runbook.serve(out, "0")  # into a directory that exists; every address
    try:
        assert server.server_address[0] == "0.0.0.0"
    finally:
        server.shutdown()
        server.server_close()
    assert main(["--root", str(tmp_path), "--out", str(out), "--serve", "8088"]) == 2
    assert "--serve needs --watch" in capsys.readouterr().err


# -------------------------------------------------------------- samples for pictures


def test_window_samples_found_by_bisect_match_a_scan(tmp_path, monkeypatch):
    rnd = random.Random(3)
    rows = sample_rows(0, 20000, value=lambda t: (rnd.random(), 1, 2, 3))  # ~6 MB
    write_metrics(tmp_path, rows)
    times = [datetime.fromisoformat(r[:29]).timestamp() - T0.timestamp() for r in rows]
    src = SampleSource(tmp_path / "logs" / "metrics.csv", TimeParser(parse_zone("+09:00")))
    reads = []
    real = src._lines_until
    monkeypatch.setattr(src, "_lines_until", lambda *a: reads.append(real(*a)) or reads[-1])
    t0 = int(T0.timestamp() * 1e6)
    for lo_s, hi_s in [(0, 10), (1234.4, 1300), (19990, 25000), (-50, 0)]:
        w = src.window(t0 + int(lo_s * 1e6), t0 + int(hi_s * 1e6))
        want = [(r, t) for r, t in zip(rows, times) if lo_s - 1e-6 <= t <= hi_s + 1e-6]
        assert [float(r.split(",")[1]) for r, _ in want] == w.columns[0]
        assert w.times_us == [t0 + round(t * 1000) * 1000 for _, t in want]
    # Each window read a small part of the file, not the file.
    assert max(len(r) for r in reads) < len(rows) / 20


def test_window_samples_in_a_disordered_block(tmp_path):
    rows = sample_rows(0, 200, value=lambda t: (t, 1, 2, 3))
    rows[500], rows[501] = rows[501], rows[500]  # out of order, at t = 100 s
    rows.insert(510, "not,a,row")
    rows.insert(520, rows[519])  # an exact duplicate: counted once
    write_metrics(tmp_path, rows)
    src = SampleSource(tmp_path / "logs" / "metrics.csv", TimeParser(parse_zone("+09:00")))
    t0 = int(T0.timestamp() * 1e6)
    w = src.window(t0 + 95_000_000, t0 + 110_000_000)
    want = [k / 5 for k in range(95 * 5, 110 * 5 + 1)]
    assert w.columns[0] == want
    assert w.times_us == [t0 + round(t * 1e6) for t in want]


def test_change_picture_draws_samples_windows_means_and_interval(tmp_path):
    write_metrics(tmp_path, sample_rows(-60, 60, value=lambda t: (1.0 if t < 0 else 2.0,
                                                                  1, 1, 1)))
    write_effects(tmp_path, [row(0, d={"phase": (1.0, 0.9, 1.1)})])
    _, html = run(tmp_path, tmp_path / "out")
    svg = re.search(r'<figure id="p2"><svg class="change".*?</svg>', html).group(0)
    assert svg.count("<rect") == 8  # pre and post shaded, four signals
    assert svg.count('stroke-width="2"') == 8  # two means each
    assert 'stroke="#b3261e"' in svg  # the interval bar
    assert svg.count("<path d=\"M") >= 4  # the samples


# -------------------------------------------------------------- a real browser


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail("chromium is missing: .ci/setup-browser.sh installs Debian's chromium")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def browse(page: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--disable-extensions", f"--user-data-dir={cwd / 'profile'}",
         "--enable-logging=stderr", "--v=0", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, cwd=cwd)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_console_check_sees_an_error(tmp_path):
    """The browser check below would notice a page that fetches or runs something."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><meta http-equiv="Content-Security-Policy" '
                   "content=\"default-src 'none'\"><img src=\"http://127.0.0.1:9/x.png\">")
    assert console_messages(browse(bad, "--dump-dom", cwd=tmp_path).stderr)


def test_html_in_a_real_browser(tmp_path):
    rows = mixed_rows() + [row(1500 + 60 * i, rule=n, actor=n) for i, n in enumerate(NASTY)]
    rows[0].update(confounded="1", verdict="warning")
    write_effects(tmp_path, rows)
    write_metrics(tmp_path, sample_rows(-60, 2000, value=lambda t: (
        0.5 + 0.05 * ((t * 7919) % 13) / 13 + (0.03 if t > 600 else 0), 0.3, 0.4, 0.2)))
    out = tmp_path / "out"
    run(tmp_path, out)
    page = out / "runbook.html"
    dom = browse(page, "--dump-dom", cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not console_messages(dom.stderr)
    shown = page_text(dom.stdout)
    # Self-contained: nothing to fetch or run (a fetch that fails is not always a console
    # error, so the elements themselves are checked too).
    assert not {t for t, _ in shown.tags} & {"script", "link", "img", "iframe", "object",
                                             "embed", "video", "audio", "source"}
    assert all(t == "a" for t, a in shown.tags if "href" in a or "src" in a)
    assert "url(" not in dom.stdout and "@import" not in dom.stdout
    for r in rows:
        assert f"Rule {r['rule']}" in shown.text
        assert r["rule_ts"] in shown.text
    assert len([t for t, a in shown.tags if t == "tr" and "data-change" in a]) == len(rows)
    artefacts = REPO / "test-artifacts"
    artefacts.mkdir(exist_ok=True)
    for name, size in (("runbook-desktop.png", "1280,2600"), ("runbook-phone.png", "390,2400")):
        shot = tmp_path / name
        res = browse(page, f"--screenshot={shot}", f"--window-size={size}",
                     "--hide-scrollbars", cwd=tmp_path)
        assert res.returncode == 0 and shot.stat().st_size > 10_000, res.stderr[-2000:]
        assert not console_messages(res.stderr)
        shutil.copy(shot, artefacts / name)


def test_vscode_task():
    tasks = {t["label"]: t for t in json.loads((REPO / ".vscode/tasks.json").read_text())["tasks"]}
    task = tasks["lumen:runbook"]
    assert task["args"][:2] == ["-m", "tracker.runbook"]
    assert "--root" in task["args"] and "--out" in task["args"]
    assert task["options"]["env"]["PYTHONUTF8"] == "1"
    args = [a.replace("${input:lumenRoot}", "demo-data") for a in task["args"][2:]]
    parsed = parser().parse_args(args)
    assert (parsed.root, parsed.out) == ("demo-data", Path("demo-data/runbook"))


def test_unwritable_output_exits_1(tmp_path, capsys):
    write_effects(tmp_path, [row(0)])
    (tmp_path / "file").write_text("")
    assert main(["--root", str(tmp_path), "--out", str(tmp_path / "file")]) == 1
    assert "lumen-runbook:" in capsys.readouterr().err


def test_metrics_without_the_columns_still_gives_a_runbook_without_samples(tmp_path):
    write_metrics(tmp_path, ["2025-10-23T13:10:00+09:00,1"], header="ts,other")
    write_effects(tmp_path, [row(0)])
    _, html = run(tmp_path, tmp_path / "out")
    svg = re.search(r'<figure id="p2"><svg class="change".*?</svg>', html).group(0)
    assert 'stroke="#59636e"' not in svg  # no samples line
    assert svg.count('stroke-width="2"') == 8  # the means, from the effects file


def test_fleet_a_section_per_gateway_and_rules_compared(tmp_path):
    rnd = random.Random(11)
    for name, beta in (("gw-a", 0.8), ("gw-b", -0.5), ("<gw>", 0.1)):
        simulate(tmp_path / name, rnd, 6, beta)
    write_effects(tmp_path / "gw-c", [row(0, rule="only_here")])
    md, html = run(tmp_path, tmp_path / "out")
    for name in ("gw-a", "gw-b", "gw-c"):
        assert f"\n## Gateway {name}\n" in md
    assert "\n## Gateway &lt;gw&gt;\n" in md
    assert md.count("\n### Favourable patterns\n") == 4
    compare = section(md, "## Same rule across gateways")
    assert "### creative\\_min" in compare and "only\\_here" not in compare
    rows = [line for line in compare.splitlines() if line.startswith("| gw-")]
    assert [r.split(" | ")[0] for r in rows] == ["| gw-a", "| gw-b"]
    assert all("from" not in r and "(6)" in r for r in rows)  # each pooled from its 6
    page = page_text(html)
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids))  # a fleet's gateways do not share element ids
    links = {a["href"][1:] for t, a in page.tags if t == "a" and a.get("href", "")[:1] == "#"}
    assert links <= set(ids)
    assert len([1 for t, a in page.tags if t == "tr" and "data-change" in a]) == 6 * 3 + 1


# --- runbook_data on its own: what is read from a row, and what is pooled or left out -----


def test_a_changes_window_and_picture_span_come_from_its_row(tmp_path):
    from tracker.runbook_data import CHART_PAD_S, load_gateway

    write_metrics(tmp_path, sample_rows(-100, 100))
    r = row(0)
    r.update(pre_s="20", post_s="10", guard_s="2")
    older = row(-50, new="0.26")
    bare = row(-70, new="0.28")
    for k in ("pre_s", "post_s", "guard_s"):
        bare[k] = ""
    broken = row(-90, new="0.30")
    broken["rule_ts"] = "yesterday"
    write_effects(tmp_path, [bare, older, broken, r])
    gw = load_gateway(resolve(str(tmp_path), env={}), None, charts_per_rule=3)
    (section,) = gw.rules
    newest, *_, last = section.changes
    assert [c.ts for c in section.changes] == [r["rule_ts"], older["rule_ts"],
                                               bare["rule_ts"], "yesterday"]
    assert (newest.pre_s, newest.post_s, newest.guard_s) == (20.0, 10.0, 2.0)
    assert (section.changes[2].pre_s, section.changes[2].post_s,
            section.changes[2].guard_s) == (30.0, 30.0, 0.0)  # the defaults
    t0 = newest.t_us
    times = newest.window.times_us
    assert times[0] == t0 - round((20 + CHART_PAD_S) * 1e6)
    assert times[-1] == t0 + round((10 + CHART_PAD_S) * 1e6)
    assert [c.charted for c in section.changes] == [True, True, True, False]
    assert last.t_us is None and last.window is None
    assert ("1 change(s) have a rule_ts that is not a valid time; they are listed last."
            in gw.notes)


def _change(old="0", new="1", d=0.1, lo=0.0, hi=0.2, n=150, confounded=False):
    from tracker.contract import SIGNALS
    from tracker.runbook_data import Change, Delta

    deltas = [Delta(m, d, lo, hi, 0.5, 0.5 + (d or 0), n, n) for m in SIGNALS]
    return Change(ts="", t_us=0, actor="", rule="r", old=old, new=new, note="",
                  pre_s=30.0, post_s=30.0, guard_s=1.0, deltas=deltas, verdict="good",
                  confounded=confounded, line=2)


def test_each_change_left_out_of_the_pooling_is_counted_under_its_reason():
    from tracker.runbook_data import MIN_CHANGES, rule_responses

    changes = (
        [_change(new="abc"), _change(new="xyz"), _change(old="1", new="1")]
        + [_change(confounded=True)] * 2
        + [_change(n=10)] * 2
        + [_change(d=None), _change(lo=None)]
        + [_change(d=0.0, lo=0.0, hi=0.0)] * 2
        + [_change(old="0", new="1", d=0.1), _change(old="0", new="2", d=0.2),
           _change(old="0", new="0.5", d=0.05)]
        + [_change(old="1", new="0", d=-0.1, lo=-0.2, hi=0.0)] * MIN_CHANGES
    )
    resp = rule_responses(changes, 1.0)[0]
    assert resp.excluded == {"not a numeric change": 3, "confounded": 2, "unreliable": 2,
                             "no interval": 2, "zero-width interval": 2}
    assert resp.used == 6
    assert resp.up.k == MIN_CHANGES and resp.down.k == MIN_CHANGES
    assert resp.up.value == pytest.approx(0.1) and resp.down.value == pytest.approx(0.1)
    assert resp.p_direction == pytest.approx(1.0)  # exactly MIN_CHANGES each way: compared
    fewer = rule_responses(changes[-MIN_CHANGES - 3:-1], 1.0)[0]
    assert fewer.up.k == MIN_CHANGES and fewer.down.k == MIN_CHANGES - 1
    assert fewer.p_direction is None  # one way has too few changes to say


def test_patterns_are_ordered_by_share_then_count_then_rule():
    from tracker.runbook_data import RuleSection, patterns

    def rule(name, verdicts):
        chs = []
        for v in verdicts:
            ch = _change()
            ch.verdict = v
            chs.append(ch)
        return RuleSection(name, chs, None, [])

    rules = [rule("a", ["good", "good", "good", "mixed"]),  # 3 of 4
             rule("b", ["good", "good"]),  # 2 of 2
             rule("c", ["good"] * 5),  # 5 of 5
             rule("d", ["warning"] * 3 + ["good"]),
             rule("e", ["warning"] * 2),
             rule("f", ["warning"] * 4)]
    favourable, avoid = patterns(rules)
    assert [(p.rule, p.k, p.n) for p in favourable] == [("c", 5, 5), ("b", 2, 2), ("a", 3, 4)]
    assert [(p.rule, p.k, p.n) for p in avoid] == [("f", 4, 4), ("e", 2, 2), ("d", 3, 4)]


def test_a_file_with_intervals_but_no_verdict_column_gets_the_older_file_note(tmp_path):
    from tracker.runbook_data import load_gateway

    s = resolve(str(tmp_path), env={})
    no_verdict = [c for c in FULL if c != "verdict"]
    write_effects(tmp_path, [row(0)], header=no_verdict)
    gw = load_gateway(s, None, 1)
    assert gw.has_intervals and not gw.has_verdict
    assert any("has no interval or verdict columns" in n for n in gw.notes)
    assert gw.rules[0].changes[0].verdict is None
    write_effects(tmp_path, [], header=V1)  # no rows: nothing to say of them
    assert load_gateway(s, None, 1).notes == []
    write_effects(tmp_path, [row(0)])
    gw = load_gateway(s, None, 1)
    assert gw.notes == [] and gw.effects_path == s.effects_path
    assert gw.rules[0].changes[0].note == ""  # no history, no note


def test_notes_are_read_past_bad_history_lines_without_a_word(tmp_path, capsys):
    from tracker.runbook_data import load_gateway

    rows = [row(0), row(10, new="0.26")]
    write_effects(tmp_path, rows)
    write_notes(tmp_path, rows, ["first", "second"])
    with open(tmp_path / "controls" / "rules_history.jsonl", "a", encoding="utf-8") as f:
        f.write("not json\n")
    gw = load_gateway(resolve(str(tmp_path), env={}), None, 1)
    assert [c.note for c in gw.rules[0].changes] == ["second", "first"]
    assert capsys.readouterr().err == ""  # bad lines are the tracker's to report


def test_the_pictures_per_rule_setting_reaches_every_gateway(tmp_path):
    from tracker.runbook_data import load as load_runbook

    write_effects(tmp_path, [row(0), row(10, new="0.26")])
    rb = load_runbook(resolve(str(tmp_path), env={}), 1)
    assert rb.charts_per_rule == 1
    assert [c.charted for c in rb.gateways[0].rules[0].changes] == [True, False]
    for name in ("a", "b"):
        write_effects(tmp_path / "fleet" / name, [row(0), row(10, new="0.26")])
    rb = load_runbook(resolve(str(tmp_path / "fleet"), env={}), 1)
    assert rb.charts_per_rule == 1 and [g.name for g in rb.gateways] == ["a", "b"]
    assert all([c.charted for c in g.rules[0].changes] == [True, False] for g in rb.gateways)


def test_window_samples_over_a_long_window_with_dirty_rows(tmp_path):
    """A window longer than one read, with an infinite and a blank value, a row logged late,
    a line of bytes that are not UTF-8, and two rows at one instant (kept in file order)."""
    rows = sample_rows(0, 3000, value=lambda t: (t, 1, 2, 3))
    rows[5 * 1200] = f"{ts(1200)},inf,1,2,3"
    rows[5 * 1300] = f"{ts(1300)},,1,2,3"
    rows[5 * 1600] = f"{ts(1600)},@@,1,2,3"  # made undecodable below
    late = rows.pop(5 * 1900)  # logged 40 s after its time, inside the window's end
    rows.insert(5 * 1940, late)
    rows.insert(5 * 1500 + 1, f"{ts(1500)},-1,1,2,3")  # same instant, after, smaller value
    path = write_metrics(tmp_path, rows)
    path.write_bytes(path.read_bytes().replace(b",@@,", b",\xff\xfe,"))
    src = SampleSource(path, TimeParser(parse_zone("+09:00")))
    t0 = int(T0.timestamp() * 1e6)
    w = src.window(t0 + 1000_000_000, t0 + 1950_000_000)
    assert w.times_us == sorted(w.times_us)
    assert (w.times_us[0], w.times_us[-1]) == (t0 + 1000_000_000, t0 + 1950_000_000)
    assert len(w.times_us) == 950 * 5 + 1 + 1  # every row, and the second at one instant
    by_time = dict(zip(w.times_us, w.columns[0]))
    for seconds in (1200, 1300, 1600):  # inf, blank, not UTF-8: no value, the row kept
        assert math.isnan(by_time[t0 + seconds * 1_000_000])
        assert by_time[t0 + seconds * 1_000_000 + 200_000] == seconds + 0.2
    assert by_time[t0 + 1900_000_000] == 1900.0  # the late row, in its place
    k = w.times_us.index(t0 + 1500_000_000)
    assert w.times_us[k + 1] == t0 + 1500_000_000 and w.columns[0][k:k + 2] == [1500.0, -1.0]


def test_window_samples_read_in_small_blocks_past_undecodable_lines(tmp_path, monkeypatch):
    """The read stops at the first whole line dated after the window (plus its margin); a
    line whose bytes are not UTF-8 at a block's end cannot say its time and reading goes on."""
    monkeypatch.setattr("tracker.samples.READ_BYTES", 97)  # a probe every line or two
    rows = sample_rows(0, 300, value=lambda t: (t, 1, 2, 3))
    for k in range(3, len(rows), 4):
        rows[k] = rows[k][:5] + "@" + rows[k][6:]  # a month byte, made undecodable below
    path = write_metrics(tmp_path, rows)
    path.write_bytes(path.read_bytes().replace(b"@", b"\xff"))
    src = SampleSource(path, TimeParser(parse_zone("+09:00")))
    t0 = int(T0.timestamp() * 1e6)
    w = src.window(t0 + 100_000_000, t0 + 120_000_000)
    want = [k / 5 for k in range(500, 601) if k % 4 != 3]
    assert w.columns[0] == want
