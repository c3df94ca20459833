"""The rules: pure, vectorised functions over the normalised extract; no file I/O.

    catalogue.py     each rule declared once: code, severity, category, Chinese title (SPEC 3)
    findings.py      the one result shape every rule returns, and the rule context
    completeness.py  MISSING_FIELD, FIELD_INVALID
    duplicates.py    DUPLICATE_POLICY
    registry.py      wires rule codes to their evaluators
"""
