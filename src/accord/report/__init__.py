"""Reports about runs: the model card (:mod:`~accord.report.card`) and plots.

The card is built from a run's stored records as a document
(:mod:`~accord.report.document`) and rendered as Markdown or one self-contained
HTML file with Plotly plots; the robustness matrix is drawn with matplotlib. Both
plotting libraries come with the ``report`` extra.
"""
