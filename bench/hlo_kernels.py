"""How many kernels one call of a compiled XLA program launches, from its optimized HLO.

At batch 1 a GPU chain is bound by launches, not FLOPs: each fusion, cuDNN or cuBLAS call
and unfused op is one, a loop body's once per iteration. The device suite prints the count
beside each program (compiled on the GPU, or cross-compiled for it: bench/cross_compile.py).
"""
import re

NO_KERNEL = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all",
             "opt-barrier", "add-dependency", "partition-id", "replica-id"}
_COMPUTATION = re.compile(r"^(ENTRY )?%?([\w.\-]+) .*\{$")
_INSTRUCTION = re.compile(r"^\s+(?:ROOT )?%?[\w.\-]+ = .*? ([a-z][\w\-]*)\((.*)$")
_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"')


def kernel_launches(hlo_text: str) -> int:
    """Kernels one call of an optimized module (`compiled.as_text()`) launches: its fusions,
    library calls and unfused ops; a loop body's once per iteration where XLA knows the trip
    count (once where it does not), a conditional's largest branch."""
    computations, entry, current = {}, None, None
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header:
            current = computations.setdefault(header.group(2), [])
            entry = header.group(2) if header.group(1) else entry
        elif current is not None and (found := _INSTRUCTION.match(line)):
            current.append(found.groups())
    if entry is None:
        raise ValueError("no ENTRY computation in this HLO text")

    def called(rest: str, attribute: str) -> str:
        return re.search(attribute + r"=%?([\w.\-]+)", rest).group(1)

    def count(name: str) -> int:
        total = 0
        for op, rest in computations[name]:
            if op == "while":
                trip = _TRIP_COUNT.search(rest)
                total += (int(trip.group(1)) if trip else 1) * count(called(rest, "body"))
            elif op == "conditional":
                branches = re.search(r"branch_computations=\{([^}]*)\}", rest)
                names = (re.findall(r"%?([\w.\-]+)", branches.group(1)) if branches else
                         re.findall(r"(?:true|false)_computation=%?([\w.\-]+)", rest))
                total += max(count(branch) for branch in names)
            elif op == "call":
                total += count(called(rest, "to_apply"))
            elif op not in NO_KERNEL:
                total += 1
        return total

    return count(entry)
