"""Evaluation: whole-split scores (``metrics``, numpy only) and confusion-matrix output
(``confusion``: rich table, PNG, CSV). Submodules are imported explicitly, so importing this
package loads neither matplotlib nor rich."""
