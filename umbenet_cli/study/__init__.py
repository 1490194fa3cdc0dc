"""``umbenet study``: a matrix of runs (the paper's tables, an ablation, a TOML plan) trained and
evaluated as ordinary run folders under ``runs/STUDY/``, with state, resume and launchers.

Submodules: ``plans`` (what to train), ``matrix`` (x folds x class settings -> commands),
``state`` (study.json, study.log), ``jobs`` (one fold-run's `umbenet` commands), ``local`` and
``slurm`` (launchers), ``status`` (the table), ``results`` (the study's report), ``run`` (the
command). Never imports Typer.
"""
