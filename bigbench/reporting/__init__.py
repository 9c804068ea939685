"""``bigbench report``: figures and a self-contained HTML page from run and bench results.

Owns: reading results for a report (``inputs``), the figures (``figures``, drawn with
matplotlib's Agg backend in one style), the HTML page and the Markdown summary. Reads results
only through :mod:`bigbench.records`; never measures anything.
"""
