"""What an operator must know about a night, said without `-v` (SPEC 7 "Warnings"): one line
each, printed after the run's summary as `warning: ...`, kept in the manifest (`warnings`) and
shown on the dashboard's top cards.

Each line says what happened and what it means, never a value from a customer's record (coded
values such as a sex code or a channel name may appear).
"""

from __future__ import annotations

import re


DIGITS = re.compile(r"\d{4}")
_SHIFTED = re.compile(r"(\w+) \([^)]*\) has the form of an? [\w ]+?(?=:)")  # rows.scope's reason


def coded(values: list, most: int = 5) -> list[str]:
    """Unexpected coded values fit to show: short, without a run of digits (a column that holds
    identity numbers or names by mistake is counted, never printed).

    >>> coded(["9", "未说明", "440106198005170035", "张三丰的身份证号码填在这里了"])
    ['9', '未说明', '2 other values']
    """
    fit = [str(v) for v in values if len(str(v)) <= 10 and not DIGITS.search(str(v))][:most]
    rest = len(values) - len(fit)
    return fit + ([f"{rest} other value{'s' if rest > 1 else ''}"] if rest else [])


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def expectation(result: dict, reference: dict) -> str:
    """One failed expectation, in words."""
    name, kw = result["name"], result.get("kwargs", {})
    seen = result.get("observed") or []
    value = seen[0] if seen and not isinstance(seen[0], str) else None
    blocking = " (blocking: exit 1)" if result.get("blocking") else ""
    if name == "volume" and value is not None:
        return (f"expectation volume failed{blocking}: rows read {_pct(value)} of the median of the last "
                f"{reference.get('nights')} nights ({reference.get('median_rows_read'):.0f} rows); expected "
                f"{_pct(kw.get('min_value', 0))} to {_pct(kw.get('max_value', 0))}")
    if name.startswith("null_rate:") and value is not None:
        return (f"expectation {name} failed{blocking}: {name.split(':', 1)[1]} is empty in {100 * value:.1f}% of "
                f"the rows read (at most {100 * kw.get('max_value', 0):.1f}% expected)")
    if name == "unique_policy_no" and value is not None:
        return (f"expectation {name} failed{blocking}: {value:.0f} row{'s' if value != 1 else ''} repeat"
                f"{'' if value != 1 else 's'} a policy number of tonight's extract")
    if name.startswith("value_set:"):
        shown = ", ".join(coded(seen))
        return (f"expectation {name} failed{blocking}: {name.split(':', 1)[1]} holds values outside the "
                f"expected set ({shown})")
    if name.startswith("rule_failure:") and value is not None:
        return (f"expectation {name} failed{blocking}: {name.split(':', 1)[1]} failed on {value:.1f}% of the "
                f"rows tested (at most {kw.get('max_value', 0):.1f}% expected)")
    return f"expectation {name} failed{blocking}"


def night_warnings(manifest: dict, gate_results: list[dict], reference: dict,
                   same_inputs: list[tuple[str, str]], extra: list[str]) -> list[str]:
    """Every warning of the night, in a fixed order."""
    out = list(extra)
    out += [expectation(r, reference) for r in gate_results if not r["success"]]
    for code, rule in manifest["rules"].items():
        if rule["status"] == "not_applicable":
            out.append(f"rule {code} did not run: {rule.get('reason', 'not applicable')}")
        elif rule["status"] == "error":
            out.append(f"rule {code} failed with {rule.get('error', 'an error')}: its findings are missing tonight")
    for reason, rows in manifest.get("quarantine_reasons", {}).items():
        shift = _SHIFTED.match(reason)
        if shift:
            out.append(f"{rows} row{'s' if rows != 1 else ''} quarantined, not checked: {shift.group(0)} "
                       f"(an export that shifted its columns? quarantine.csv lists them; if such numbers are your "
                       f"own codes, take {shift.group(1)} out of scope.identifier_guard)")
    d = manifest["deadlines"]
    if d["calendar_years_uncovered"]:
        out.append(f"no official working-day calendar for {', '.join(map(str, d['calendar_years_uncovered']))}: "
                   "deadlines there count weekends only and are marked provisional (add calendar.years)")
    for path, night in same_inputs:
        out.append(f"input {path} is the same file (sha256) as an input of the night of {night}")
    if not d["list_due_met"]:
        out.append(f"the list was due on {d['list_due']} (T+1 working day) and is late")
    return out
