"""The case lifecycle (SPEC 6): items that live across nights, their events, suppressions.

    tables    the store's items / item_events / suppressions tables
    night     a night's findings -> the open list (new, carried, reopened, resolved, suppressed)
    imports   worklists filled in by the teams, read back (`custdq cases import`)
    listing   open and overdue items for the console (`custdq cases list`)
"""
