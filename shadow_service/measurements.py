"""Names of what nova-shadow keeps in its history store: defined once.

Every part that writes or reads history (the evaluator, the learners, the
twin, the history stores, the watcher, the demo) names measurements, tags
and fields through these constants; ``doc/source/contributor/contracts.rst``
documents the schema.  ``loadgen`` runs inside guests and cannot import
this package: its own ``loadgen.runner.MEASUREMENT`` must stay equal to
:data:`SHADOW_SAMPLE` (a unit test checks).
"""

#: What a shadow (loadgen, or the twin on its behalf) measured.
#: Tags ``evaluation``, ``shadow``, ``host``, ``profile``, ``metric``.
SHADOW_SAMPLE = 'shadow_sample'
#: What host monitoring saw.  Tags ``host``, ``metric``.
HOST_METRIC = 'host_metric'
#: What a placed (full) VM achieved.  Tags ``instance``, ``host``,
#: ``metric``.
INSTANCE_METRIC = 'instance_metric'
#: One evaluation record.  Tags ``evaluation``, ``status``; fields
#: ``record`` (JSON), ``confidence``, ``duration_s``.
EVALUATION = 'evaluation'
#: One scaling decision of the watcher.  Tags ``instance``, ``action``,
#: ``outcome``; field ``record`` (JSON).
SCALING_DECISION = 'scaling_decision'

#: What Nova did with an instance (from its versioned notifications).
#: Tags ``instance``, ``host``, ``event``; field ``record`` (JSON).
INSTANCE_EVENT = 'instance_event'

#: Whether a ranking's top host really was best over the placed VM's
#: first day.  Tags ``evaluation``, ``host``; fields ``confidence`` (the
#: raw confidence the ranking stated), ``outcome`` (1 right, 0 wrong).
RANKING_OUTCOME = 'ranking_outcome'

#: Each host's score in one evaluation (for dashboards: the ranking is
#: also in the evaluation record).  Tags ``evaluation``, ``host``,
#: ``profile``, ``source``; fields ``score`` (0-100), ``confidence``.
HOST_SCORE = 'host_score'
#: The watcher's demand forecast of a VM, stamped at the time it is for
#: (the run's time plus the lead time).  Tags ``instance``, ``model``;
#: fields ``mean``, ``lower``, ``upper`` (busy vCPUs at that time),
#: ``peak`` (the peak the policy saw, margin included), ``lead_s``.
DEMAND_FORECAST = 'demand_forecast'

#: Every measurement of the schema.
MEASUREMENTS = (SHADOW_SAMPLE, HOST_METRIC, INSTANCE_METRIC, EVALUATION,
                SCALING_DECISION, INSTANCE_EVENT, RANKING_OUTCOME,
                HOST_SCORE, DEMAND_FORECAST)
#: Numeric series that retention rolls up into coarser buckets; records
#: (evaluations, decisions) are kept whole or not at all.
ROLLUP_MEASUREMENTS = (HOST_METRIC, INSTANCE_METRIC, SHADOW_SAMPLE)

# Tag names.
TAG_EVALUATION = 'evaluation'
TAG_SHADOW = 'shadow'
TAG_HOST = 'host'
TAG_PROFILE = 'profile'
TAG_METRIC = 'metric'
TAG_INSTANCE = 'instance'
TAG_STATUS = 'status'
TAG_ACTION = 'action'
TAG_OUTCOME = 'outcome'
TAG_EVENT = 'event'
TAG_SOURCE = 'source'
TAG_MODEL = 'model'

#: The tags an InfluxDB roll-up keeps, per measurement (all when not
#: listed).  A shadow's samples are rolled up per host, profile and
#: metric: every evaluation and every shadow would otherwise add series
#: that live as long as the roll-ups (InfluxDB limits the series of a
#: database, 1,000,000 by default).
ROLLUP_TAGS = {SHADOW_SAMPLE: (TAG_HOST, TAG_PROFILE, TAG_METRIC)}

# Field names.
FIELD_VALUE = 'value'
FIELD_RECORD = 'record'
FIELD_CONFIDENCE = 'confidence'
FIELD_OUTCOME = 'outcome'
