"""Stage 2: one snapshot -> canonical spans (+ rejected rows) -> timeline, with the audit.

``pipeline`` wires the stages; ``semantics`` holds the Nova/Blazar rules that decide each level;
``books`` records every rejected row and clipped hour; ``timeline`` and ``leaves`` turn spans
into the leaf series; ``audit`` owns every invariant check; ``outputs`` writes the files."""
