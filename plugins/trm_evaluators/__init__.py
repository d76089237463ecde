"""Generic evaluators that work for any task (entry points name their modules, e.g. ``trm_evaluators.exact_match``)."""
