"""Looking inside a model: the probes of its hidden layer (`probes`, `units`), the
training diagnostics (`diagnostics`), the HTML report (`report`, `report_page`) and
plots (`plots`, matplotlib optional).

Imports `base`, `data`, `models`, `engine` and `run`.
"""
