"""The label state machine: buy each accepted order's Canada Post label exactly once.

    (no shipment) ──create──▶ label_pending ──claim──▶ label_creation_initiated ──▶ label_created
                                   ▲   ▲                        │    │    │
                     proven not    │   └──── labels retry ──────┘    │    └──▶ needs_review
                     bought        │                                 ▼         (ambiguous)
                                   └─────────────────────────── label_failed
                                                              (Canada Post refused)

The moves themselves are the table in fulfil/shipments/states.py, enforced by the database. The
phases: ``purchase`` (claim, send, record what the answer proves), ``reconcile`` (settle a purchase
whose outcome is unknown), ``recording`` (a label sold: on the shipment, or as a surplus label),
``download`` (the PDF), ``commands`` (retry, keep, dry run); ``workflow`` assembles them.

Exactly once, under every fault:

* Each attempt is sent only if this run still holds the claim, checked in the transaction that
  writes its api_calls row: a claim taken over is never POSTed by its old owner.
* The claim (lease) lasts as long as the whole Create Shipment retry policy can take, and a
  purchase whose answer is unknown is proven not bought only when Canada Post still shows nothing
  after its last attempt's deadline plus Canada Post's allowance.
* A purchase that succeeded is always recorded, even when another run took the claim over in the
  meantime: on the shipment if it holds no label, else as a surplus label (one of the two must be
  voided) with the shipment parked in ``needs_review`` when not yet pushed.
* Every value Canada Post sends back is checked (PIN, shipment id, links on Canada Post's own host)
  before it is recorded; an answer that fails the checks is indeterminate, never re-POSTed.
* The labels directory is checked before anything is bought.
* A run leaves no lease behind when it ends (finished, failed or stopped by a signal).
"""

from fulfil.workflows.labels.results import LabelResult, LabelRun, LabelSettings
from fulfil.workflows.labels.workflow import LabelWorkflow

__all__ = ["LabelResult", "LabelRun", "LabelSettings", "LabelWorkflow"]
