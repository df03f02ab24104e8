"""Selection apart from assessment: how runs are split, and whether regularization helped.

- :mod:`.splits`: the protocols (``holdout``, ``kfold``, ``tutorial``) and the
  folds they cut from the training rows; the test rows are never among them;
- :mod:`.compare`: pure functions over the trials table (and each run's
  per-row outcomes, :mod:`regsearch.outcomes`): which runs are the
  unregularized baseline, paired differences to it with intervals each on
  its own and family-wise, the selected configuration's test score and
  optimism, the one-line answer, and what the search could detect;
- :mod:`.intervals`: the arithmetic under them: the paired bootstrap over rows
  and seeds, simultaneous (max-t) and Bonferroni intervals, Holm, and power;
- :mod:`.refit`: ``kfold``'s last step, the chosen configuration (and the
  baseline) retrained on every training row and scored once on the test rows;
- :mod:`.nested`: ``nested``'s assessment: per outer fold the choice, its inner
  score and its score on the outer rows; the procedure's expected score, how
  often each configuration was chosen, and the optimism.
"""

from regsearch.evaluation.splits import PROTOCOLS, Fold, OuterFold, Protocol, make_folds, outer_folds

__all__ = ["PROTOCOLS", "Fold", "OuterFold", "Protocol", "make_folds", "outer_folds"]
