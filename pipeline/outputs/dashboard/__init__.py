"""The managers' dashboard (issue 6): figures from the case store's history -> one offline page.

    dims    tonight's per-branch / channel / agent figures (stored in `night_dims`)
    data    what the page shows, read from the store (no personal data)
    svg     small inline SVG charts (no scripts, nothing fetched)
    page    the self-contained HTML page
"""
