"""Parser for logs of TFLite's ``benchmark_model`` tool, as captured on a device.

Tolerates every form seen in the wild: bare lines, an ``INFO: `` prefix, Android logcat prefixes
(``11-22 10:01:02.345  1234  1234 I tflite  : ``), scientific notation (``2.95034e+06``), builds that add
``p5=``/``median=``/``p95=`` to the statistics line, and both the current and the older memory lines. A log
with no timing results is rejected with the file name and the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

from restnetc.config.base import StrictModel
from restnetc.errors import RestnetcError

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PREFIX = re.compile(r"^(?:.*?\b[VDIWEF]\s+tflite\s*:\s?|INFO:\s|WARNING:\s|ERROR:\s)")
_STATS = re.compile(rf"^count=(?P<count>\d+)(?P<rest>(?:\s+\w+={_NUM})+)\s*$")
_PAIR = re.compile(rf"(\w+)=({_NUM})")
_TIMINGS = re.compile(
    rf"^Inference timings in us: Init: (?P<init>{_NUM}), First inference: (?P<first>{_NUM}), "
    rf"Warmup \(avg\): (?P<warmup>{_NUM}), Inference \(avg\): (?P<avg>{_NUM})"
)
_INIT_SESSION = re.compile(rf"^Initialized session in (?P<ms>{_NUM})\s*ms")
_DELTA = re.compile(
    rf"^Memory footprint delta from the start of the tool \(MB\): init=(?P<init>{_NUM}) overall=(?P<overall>{_NUM})"
)
_PEAK = re.compile(rf"^Overall peak memory footprint \(MB\) via periodic monitoring: (?P<peak>{_NUM})")
_OLD_PEAK = re.compile(rf"^Peak memory footprint \(MB\): init=(?P<init>{_NUM}) overall=(?P<overall>{_NUM})")
_PARAM = re.compile(
    r"^(?P<name>Num threads|Graph|Signature to run|Use xnnpack|Num runs|Min warmup runs): \[(?P<value>[^\]]*)\]"
)
_DELEGATE = re.compile(
    r"^Replacing (?P<replaced>\d+) out of (?P<total>\d+) node\(s\) with delegate \((?P<delegate>[^)]+)\) node, "
    r"yielding (?P<partitions>\d+) partitions"
)


class RunStatistics(StrictModel):
    """One ``count=... first=... min=...`` line, in microseconds."""

    count: int
    first_us: float | None = None
    curr_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    avg_us: float | None = None
    std_us: float | None = None
    p5_us: float | None = None
    median_us: float | None = None
    p95_us: float | None = None


class DelegateUse(StrictModel):
    """A ``Replacing N out of M node(s) with delegate`` line."""

    delegate: str
    replaced_nodes: int
    total_nodes: int
    partitions: int


class BenchmarkLog(StrictModel):
    """Structured figures of one ``benchmark_model`` run."""

    source: str
    graph: str | None
    signature: str | None = None
    """The signature run (``--signature_to_run_for``), when the log names one."""
    threads: int | None
    use_xnnpack: bool | None
    init_session_ms: float | None
    init_us: float
    first_inference_us: float
    warmup_avg_us: float
    inference_avg_us: float
    warmup: RunStatistics | None
    inference: RunStatistics | None
    memory_init_delta_mb: float | None
    memory_overall_delta_mb: float | None
    peak_memory_mb: float | None
    delegates: list[DelegateUse]

    @property
    def inference_ms(self) -> float:
        """The inference median when the build reports percentiles, else the average, in milliseconds."""
        median = self.inference.median_us if self.inference is not None else None
        return (median if median is not None else self.inference_avg_us) / 1e3


class BenchmarkLogError(RestnetcError):
    """A log that is not a usable ``benchmark_model`` output."""


def _statistics(rest: str, count: int) -> RunStatistics:
    values = {f"{key}_us": float(value) for key, value in _PAIR.findall(rest)}
    known = set(RunStatistics.model_fields) - {"count"}
    return RunStatistics(count=count, **{k: v for k, v in values.items() if k in known})


def parse_benchmark_log(text: str, source: str) -> BenchmarkLog:
    """Parse one log; ``source`` (the file name) appears in every error."""
    params: dict[str, str] = {}
    stats: list[RunStatistics] = []
    delegates: list[DelegateUse] = []
    fields: dict[str, float] = {}
    for raw in text.splitlines():
        line = _PREFIX.sub("", raw.strip(), count=1).strip()
        if match := _PARAM.match(line):
            params[match["name"]] = match["value"]
        elif match := _STATS.match(line):
            stats.append(_statistics(match["rest"], int(match["count"])))
        elif match := _TIMINGS.match(line):
            fields.update({k: float(v) for k, v in match.groupdict().items()})
        elif match := _INIT_SESSION.match(line):
            fields["init_session_ms"] = float(match["ms"])
        elif match := _DELTA.match(line):
            fields["delta_init"], fields["delta_overall"] = float(match["init"]), float(match["overall"])
        elif match := _PEAK.match(line):
            fields["peak"] = float(match["peak"])
        elif match := _OLD_PEAK.match(line):
            fields.setdefault("delta_init", float(match["init"]))
            fields["old_peak"] = float(match["overall"])
        elif match := _DELEGATE.match(line):
            delegates.append(
                DelegateUse(
                    delegate=match["delegate"],
                    replaced_nodes=int(match["replaced"]),
                    total_nodes=int(match["total"]),
                    partitions=int(match["partitions"]),
                )
            )
    if "avg" not in fields:
        why = (
            "it stops before the timing results (did the run crash?)"
            if params or stats
            else "no benchmark_model output found"
        )
        raise BenchmarkLogError(
            f"{source}: not a complete benchmark_model log: no 'Inference timings in us' line; {why}"
        )
    threads = params.get("Num threads")
    xnnpack = params.get("Use xnnpack")
    return BenchmarkLog(
        source=source,
        graph=params.get("Graph") or None,
        signature=params.get("Signature to run") or None,
        threads=int(threads) if threads and threads.lstrip("-").isdigit() else None,
        use_xnnpack=None if xnnpack is None else xnnpack.strip().lower() in ("1", "true"),
        init_session_ms=fields.get("init_session_ms"),
        init_us=fields["init"],
        first_inference_us=fields["first"],
        warmup_avg_us=fields["warmup"],
        inference_avg_us=fields["avg"],
        warmup=stats[0] if len(stats) >= 2 else None,
        inference=stats[-1] if stats else None,
        memory_init_delta_mb=fields.get("delta_init"),
        memory_overall_delta_mb=fields.get("delta_overall"),
        peak_memory_mb=fields.get("peak", fields.get("old_peak")),
        delegates=delegates,
    )


def read_benchmark_log(path: Path) -> BenchmarkLog:
    """Read and parse a log file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BenchmarkLogError(f"{path}: cannot read: {exc}") from None
    return parse_benchmark_log(text, str(path))
