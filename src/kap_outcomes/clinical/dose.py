"""The plausible range of one recorded ketamine dose, in milligrams, whatever the route.

A recorded dose outside it is a slip of the unit (micrograms or grams typed as milligrams), an
extra or missing digit, or a machine's artefact (``1e-320``), never a dose that was given:

- Lower bound, 1 mg. The smallest dose studied for depression is 0.1 mg/kg IV (Fava et al.
  2020, Mol Psychiatry 25:1592, dose-ranging 0.1 to 1.0 mg/kg), 5 mg for a 50 kg adult; the
  usual IV dose is 0.5 mg/kg over 40 minutes (Berman et al. 2000, Biol Psychiatry 47:351).
- Upper bound, 1000 mg. Intranasal esketamine is given as 56 or 84 mg (SPRAVATO prescribing
  information); oral and sublingual ketamine take larger doses because only about a fifth
  reaches the circulation (Clements et al. 1982, J Pharm Sci 71:539), yet a single dose of
  a gram is beyond what any route of ketamine-assisted psychotherapy uses.

The units of every route are milligrams of ketamine, so one range serves all routes.
"""

from __future__ import annotations

DOSE_MIN_MG = 1.0
DOSE_MAX_MG = 1000.0
