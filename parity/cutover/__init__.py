"""``parity cutover``: the live gate of a weighted-DNS migration (issue 16).

Layers (the decision core is ``parity.judge.sequential``, pure):

- ``model``: the shared vocabulary (selectors, settings of the shifter, the run as reports read it);
- ``settings``: the ``[cutover]`` table of parity.toml → :class:`model.CutoverSettings`;
- ``live_apm``: both environments' per-interval APM through the official Datadog client;
- ``shifters`` / ``route53``: moving the weights (command, manual, Route 53 through boto3);
- ``journal`` / ``run``: the driver, its append-only journal, ``--resume`` and ``--dry-run``;
- ``report``: index.html, summary.md and cutover.json of a run.
"""
