"""The rules: pure, vectorised functions over the normalised extract; no file I/O.

    catalogue.py     each rule declared once: code, severity, category, Chinese title, scope and
                     the evaluator that runs it (SPEC 3)
    findings.py      the one result shape every rule returns, and the rule context
    completeness.py  MISSING_FIELD, FIELD_INVALID
    duplicates.py    DUPLICATE_POLICY
    ric.py           GB 11643 identity numbers, one value at a time (python-stdnum style)
    exceptions.py    the typed validation errors ric.py raises, with default messages
    ric_vector.py    the same checks over whole columns (digit matrices)
    identity.py      ID_* rules
    phones.py        phone normalisation to E.164 (phonenumbers' metadata, column-wise)
    contacts.py      PHONE_INVALID, PHONE_PLACEHOLDER, BANK_* rules
    agents.py        PHONE_IS_AGENT
    customers.py     customer identity (SPEC 2.4): who is the same natural person
    shared.py        PHONE_SHARED / BANK_SHARED over a pool of contact rows: parties, clusters
    regions.py       GB/T 2260 address codes (python-stdnum data + allow-list)
    masking.py       display masking of personal data
    personal.py      what has the form of a personal number (identity number, mobile, bank card)
                     in a column that should hold codes, so the row is quarantined (rows.scope)
    arrays.py        Arrow strings as numpy bytes
    data/            region_allowlist.csv: address codes allowed beside python-stdnum's data
"""
