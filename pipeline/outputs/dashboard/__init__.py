"""The managers' dashboard (issue 6): figures from the case store's history -> one offline page.

    dims    tonight's per-branch / channel / agent figures (stored in `night_dims`)
    data    what the page shows, read from the store (no personal data)
    progress  what the teams did: the quarter's items per branch by where they stand, 虚假资料
    charts  the charts as Apache ECharts options (both pages draw the same)
    page    the self-contained HTML page
"""
