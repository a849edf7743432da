"""`fulfil manifest transmit`: a day's group of labels to Canada Post exactly once, then its manifests.

Transmitting bills the day's labels and cannot be undone (a transmitted label is refunded, not
voided), so it is done the way a label is bought (DESIGN.md, "Calling the outside world"):

1. **Settle first.** A transmit left in flight by a run that is gone (killed, crashed, its answer
   lost) is settled by reading before anything is sent: its Transmit Shipments rows in api_calls
   (an answer that arrived but was never recorded), then Canada Post's manifests of its days
   (Get Manifests ``?start=&end=``), each one fulfil does not know read with the shipments on it.
   A manifest holding a shipment the transmit meant to send is its manifest. None, once every
   attempt is past its deadline and Canada Post's allowance: proven not transmitted (released;
   the group may be sent again). None before that: left unsettled for the next run. Only a
   request that provably sent nothing (or that Canada Post refused at the door) is released at
   once. Nothing is ever sent twice blindly: while a transmit of a group is unsettled, no other
   transmit of it can even be claimed (a unique index).
2. **Finish.** Manifests with a step still to do (Get Manifest, the shipments on it, its PDF) are
   finished: reads, safe to repeat.
3. **Intent.** The day's transmit is committed (``sending``, with this run's lease) before
   anything is sent; a second run meanwhile finds it and leaves the group alone.
4. **Plan.** Canada Post's list of the group (Get Shipments ``?groupId=``), against what fulfil
   recorded: labels on a manifest already are done; labels voided or being voided, of orders
   canceled, waiting for review, surplus labels and shipments fulfil did not record are left out
   (``excluded-shipments``), each with the reason; the rest is what the transmit sends. Committed
   on the transmit before it is sent. Nothing to send: the intent is dropped, nothing sent.
5. **Send** Transmit Shipments, only while this run holds the transmit (checked in the
   transaction that writes each attempt's api_calls row).
6. **Record** the manifests of the answer with the transmit (``transmitted``, one transaction),
   then for each: Get Manifest (PO number and links, every link on the configured host), the
   shipments on it (fulfil's are marked transmitted: ``shipments.manifest_id``, not a state), and
   its PDF into ``<labels dir>/manifests/``, written to a temporary name and renamed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fulfil.audit.log import LeaseLost
from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.bestbuy.order_states import CANCELED as ORDER_STATUS_CANCELED
from fulfil.canadapost.client import CanadaPostUnavailable, auth_error, interpret_error
from fulfil.canadapost.groups import canada_post_day, day_group_id
from fulfil.canadapost.manifests import (
    ManifestClient,
    ManifestInfo,
    ManifestLink,
    build_transmit_request,
)
from fulfil.canadapost.responses import ErrorKind, ResponseFormatError
from fulfil.canadapost.sender import SenderAddress
from fulfil.config import CanadaPostSettings
from fulfil.errors import ConfigError
from fulfil.label_files import check_labels_dir, write_label
from fulfil.manifests.store import NOT_SENT as STATUS_NOT_SENT
from fulfil.manifests.store import REFUSED as STATUS_REFUSED
from fulfil.manifests.store import ManifestStore
from fulfil.runs import owner_is_dead
from fulfil.shipments.states import ShipmentState

if TYPE_CHECKING:
    from fulfil.services import Session

S = ShipmentState

# Outcomes, one per transmit a run touched.
TRANSMITTED = "transmitted"  # Canada Post made its manifests (found_by: its answer, or a look-up)
NOTHING_TO_TRANSMIT = "nothing_to_transmit"  # no label of the group waits: nothing was sent
NOT_SENT = "not_sent"  # provably not transmitted (never sent, refused at the door, proven absent)
REFUSED = "refused"  # Canada Post refused it (its message in error)
UNSETTLED = "unsettled"  # its answer was lost and it cannot be told yet: the next run settles it
IN_PROGRESS = "in_progress"  # another run holds the group's transmit
COMPLETED = "completed"  # an earlier transmit's manifests, finished by this run
ABANDONED = "abandoned"  # an earlier run stopped before sending anything: forgotten
ATTENTION = frozenset({NOT_SENT, REFUSED, UNSETTLED, IN_PROGRESS})

# The labels a transmit sends: bought, and not given up.
_TRANSMITTABLE = frozenset({S.LABEL_CREATED, S.TRACKING_SENT, S.TRACKING_UPDATED, S.TRACKING_FAILED})
_VOIDING = frozenset({S.LABEL_VOIDING, S.LABEL_VOIDED, S.REFUND_REQUESTED})
FOUND_IN_ANSWER = "answer"
FOUND_BY_LOOK_UP = "look-up"


@dataclass(frozen=True)
class TransmitSettings:
    canadapost: CanadaPostSettings
    sender: SenderAddress  # the manifest's address and where the parcels are tendered
    manifests_dir: Path  # <labels dir>/manifests
    # How long a transmit is this run's: a read and the transmit, each with all attempts and waits.
    lease_seconds: float
    deadline: float  # one call's deadline, for attempts recorded without deadline_at
    settle_allowance: float  # how long Canada Post is given to make what it received visible


@dataclass
class TransmitResult:
    day: date
    group_id: str
    outcome: str
    transmit_id: int | None = None
    found_by: str | None = None
    included: int = 0
    excluded: list[dict[str, Any]] = field(default_factory=list)
    manifests: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    error: str | None = None

    @property
    def needs_attention(self) -> bool:
        return (
            self.outcome in ATTENTION
            or any(manifest.get("error") for manifest in self.manifests)
            or any(entry.get("attention") for entry in self.excluded)
        )

    def as_record(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "group_id": self.group_id,
            "outcome": self.outcome,
            "transmit_id": self.transmit_id,
            "found_by": self.found_by,
            "included": self.included,
            "excluded": self.excluded,
            "manifests": self.manifests,
            "message": self.message,
            "error": self.error,
        }


@dataclass(frozen=True)
class _Transmit:
    """A claimed transmit, as the store returned it."""

    transmit_id: int
    group_id: str
    day: date
    started_at: datetime
    included: tuple[str, ...]

    @classmethod
    def of(cls, row: dict[str, Any]) -> _Transmit:
        return cls(
            transmit_id=int(row["transmit_id"]),
            group_id=row["group_id"],
            day=row["manifest_date"],
            started_at=row["started_at"],
            included=tuple(row.get("included") or ()),
        )

    def result(self, outcome: str, **fields: Any) -> TransmitResult:
        return TransmitResult(self.day, self.group_id, outcome, transmit_id=self.transmit_id, **fields)


@dataclass(frozen=True)
class _Found:
    """A manifest found by a look-up, read already: its link, what Get Manifest said, its shipments."""

    link: ManifestLink
    info: ManifestInfo
    shipment_ids: list[str]


class Transmitter:
    def __init__(self, settings: TransmitSettings, client: ManifestClient, store: ManifestStore) -> None:
        self.settings = settings
        self.client = client
        self.store = store

    # --- a run ------------------------------------------------------------------------------------

    def run(self, day: date) -> list[TransmitResult]:
        """Settle what earlier runs left, finish their manifests, then transmit ``day``'s group."""
        results = self.settle_left_over()
        handled = {result.transmit_id for result in results}
        results += self.finish_left_over(skip=handled)
        today = self.transmit(day)
        if not (today.outcome == UNSETTLED and today.transmit_id in handled):
            results.append(today)
        return results

    def settle_left_over(self) -> list[TransmitResult]:
        """Every transmit left in flight by a run that is gone, oldest first, settled by reading."""
        dead = [owner for owner in self.store.owners_of_unsettled() if owner_is_dead(owner)]
        results: list[TransmitResult] = []
        seen: list[int] = []
        while True:
            row = self.store.claim_unsettled(
                lease_seconds=self.settings.lease_seconds, dead_owners=dead, skip=seen
            )
            if row is None:
                return results
            transmit = _Transmit.of(row)
            seen.append(transmit.transmit_id)
            results.append(self._settle_left(transmit))

    def finish_left_over(self, skip: set[int | None]) -> list[TransmitResult]:
        """Manifests recorded earlier with a step still to do (read, shipments, PDF), finished."""
        by_transmit: dict[int, list[dict[str, Any]]] = {}
        for row in self.store.unfinished_manifests():
            by_transmit.setdefault(int(row["transmit_id"]), []).append(row)
        results = []
        for transmit_id, rows in by_transmit.items():
            if transmit_id in skip:
                continue
            for row in rows:
                self._finish(row)
            first = rows[0]
            results.append(
                TransmitResult(
                    first["manifest_date"],
                    first["group_id"],
                    COMPLETED,
                    transmit_id=transmit_id,
                    manifests=self._summaries(transmit_id),
                    message="manifests of an earlier transmit, finished now",
                )
            )
        return results

    # --- the day's transmit -----------------------------------------------------------------------

    def transmit(self, day: date) -> TransmitResult:
        group_id = day_group_id(day)
        row = self.store.claim_transmit(group_id, day, lease_seconds=self.settings.lease_seconds)
        if row is None:
            blocked = self._blocked(group_id, day)
            if blocked is not None:
                return blocked
            row = self.store.claim_transmit(group_id, day, lease_seconds=self.settings.lease_seconds)
            if row is None:
                return TransmitResult(day, group_id, IN_PROGRESS, message="another run claimed it just now")
        transmit = _Transmit.of(row)
        try:
            listed = self.client.group_shipment_ids(group_id)
            included, excluded, done = self._plan(self.store.listed_shipments(listed))
        except CanadaPostUnavailable as exc:
            self.store.drop_unsent(transmit.transmit_id)
            return TransmitResult(
                day,
                group_id,
                NOT_SENT,
                error=str(exc),
                message="Canada Post's list of the group could not be read; nothing was sent",
            )
        except BaseException:
            # Nothing was sent: the intent goes, and the error (a configuration error, a stop) with it.
            self.store.drop_unsent(transmit.transmit_id)
            raise
        if not included:
            self.store.drop_unsent(transmit.transmit_id)
            earlier = self._group_manifests(group_id)
            return TransmitResult(
                day,
                group_id,
                NOTHING_TO_TRANSMIT,
                excluded=excluded,
                manifests=earlier,
                message=self._nothing_message(day, group_id, done, earlier, excluded),
            )
        if not self.store.record_plan(transmit.transmit_id, included, excluded):
            return transmit.result(
                IN_PROGRESS, message="another run took the transmit over; nothing was sent"
            )
        request = build_transmit_request(
            [group_id], self.settings.sender, [e["cp_shipment_id"] for e in excluded]
        )
        try:
            outcome = self.client.transmit(
                group_id, request, guard=self.store.transmit_guard(transmit.transmit_id)
            )
        except LeaseLost as exc:
            return transmit.result(IN_PROGRESS, included=len(included), excluded=excluded, message=str(exc))
        sent = _Transmit(transmit.transmit_id, group_id, day, transmit.started_at, tuple(included))
        result = self._after_post(sent, outcome)
        result.included = len(included)
        result.excluded = excluded
        return result

    def _blocked(self, group_id: str, day: date) -> TransmitResult | None:
        """Why the group cannot be claimed: another run holds it, or an earlier transmit of it is
        unsettled. None when nothing holds it any more (it was settled meanwhile)."""
        other = self.store.transmit_in_flight(group_id)
        if other is None:
            return None
        if other["leased"] and not owner_is_dead(other["lease_owner"]):
            return TransmitResult(
                day,
                group_id,
                IN_PROGRESS,
                transmit_id=other["transmit_id"],
                message=f"another run is transmitting the group (since {other['started_at']:%H:%M:%S})",
            )
        return TransmitResult(
            day,
            group_id,
            UNSETTLED,
            transmit_id=other["transmit_id"],
            error=other["error"],
            message="an earlier transmit of the group is not settled yet; nothing is sent before it is",
        )

    def _plan(self, rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]], int]:
        """(what to send, what to leave out with the reason, how many are on a manifest already)."""
        included: list[str] = []
        excluded: list[dict[str, Any]] = []
        done = 0
        for row in rows:
            if row["on_manifest"] is not None:
                done += 1
                continue
            why, attention = _left_out_because(row)
            if why is None:
                included.append(row["cp_shipment_id"])
            else:
                excluded.append(
                    {
                        "cp_shipment_id": row["cp_shipment_id"],
                        "order_id": row["order_id"],
                        "status": row["status"],
                        "why": why,
                        "attention": attention,
                    }
                )
        return included, excluded, done

    def _nothing_message(
        self,
        day: date,
        group_id: str,
        done: int,
        earlier: list[dict[str, Any]],
        excluded: list[dict[str, Any]],
    ) -> str:
        """What a run that sent nothing says: where the group's labels went, if anywhere. (Canada
        Post may list a group's transmitted shipments, or only those still waiting: the manifests
        fulfil recorded say it either way.)"""
        if earlier:
            labels = sum(manifest["shipments"] or 0 for manifest in earlier) or done
            numbers = ", ".join(str(manifest["po_number"]) for manifest in earlier)
            said = (
                f"nothing to transmit: {day}'s group {group_id} was transmitted "
                f"({labels} labels, PO {numbers})"
            )
        elif done:
            said = f"nothing to transmit: {day}'s group {group_id} was transmitted ({done} labels)"
        else:
            said = f"nothing to transmit: Canada Post holds no label in {day}'s group {group_id}"
        if excluded:
            said += f"; {len(excluded)} left out"
        return said

    # --- after the request ------------------------------------------------------------------------

    def _after_post(self, transmit: _Transmit, outcome: HttpOutcome) -> TransmitResult:
        """Record what the answer proves; an answer that proves nothing is settled by a look-up."""
        if outcome.ok:
            try:
                links = self.client.manifest_links_of(outcome.body)
            except ResponseFormatError as exc:
                return self._look_up(transmit, f"the answer could not be used ({exc})")
            if links:
                return self._record_transmitted(transmit, links, FOUND_IN_ANSWER)
            return self._look_up(transmit, "the answer listed no manifest")
        if outcome.failure in (FailureClass.NOT_SENT, FailureClass.RATE_LIMITED):
            # Never reached Canada Post, or refused at its door (throttled): nothing was performed.
            error = f"Transmit Shipments not performed: {interpret_error(outcome).description}"
            self.store.release(transmit.transmit_id, status=STATUS_NOT_SENT, error=error)
            return transmit.result(
                NOT_SENT, error=error, message="nothing was transmitted; the next run sends it"
            )
        if outcome.failure is FailureClass.DEFINITIVE:
            refusal = interpret_error(outcome)
            self.store.release(transmit.transmit_id, status=STATUS_REFUSED, error=refusal.description)
            if refusal.kind is ErrorKind.AUTH:
                raise auth_error(refusal)
            return transmit.result(
                REFUSED, error=refusal.description, message="Canada Post refused the transmit"
            )
        return self._look_up(transmit, f"the answer was lost ({outcome.describe()})")

    def _settle_left(self, transmit: _Transmit) -> TransmitResult:
        """A transmit an earlier run left in flight: its api_calls rows first, then Canada Post."""
        calls = self.store.transmit_calls(transmit.group_id, transmit.started_at)
        if not calls:
            self.store.drop_unsent(transmit.transmit_id)
            return transmit.result(
                ABANDONED, message="an earlier run stopped before it sent anything; nothing was transmitted"
            )
        for call in reversed(calls):
            if call["is_success"] and call["response_body"] and not call["response_truncated"]:
                try:
                    links = self.client.manifest_links_of(call["response_body"])
                except ResponseFormatError:
                    continue
                if links:
                    return self._record_transmitted(transmit, links, FOUND_IN_ANSWER)
        # Only calls that all ended, none answered 2xx and none indeterminate, prove anything alone.
        classes = {call["failure_class"] for call in calls}
        proven = all(call["finished"] and not call["is_success"] for call in calls)
        not_sent = {FailureClass.NOT_SENT.value, FailureClass.RATE_LIMITED.value}
        if proven and classes <= not_sent:
            error = (
                f"Transmit Shipments was never sent ({len(calls)} attempts, each refused before it went out)"
            )
            self.store.release(transmit.transmit_id, status=STATUS_NOT_SENT, error=error)
            return transmit.result(
                NOT_SENT, error=error, message="nothing was transmitted; the next run sends it"
            )
        if (
            proven
            and FailureClass.DEFINITIVE.value in classes
            and classes <= {*not_sent, FailureClass.DEFINITIVE.value}
        ):
            error = "Canada Post refused the transmit (see `fulfil calls --endpoint TransmitShipments`)"
            self.store.release(transmit.transmit_id, status=STATUS_REFUSED, error=error)
            return transmit.result(REFUSED, error=error)
        return self._look_up(transmit, "an earlier run's transmit has no recorded answer")

    def _look_up(self, transmit: _Transmit, why: str) -> TransmitResult:
        """Find the transmit's manifests at Canada Post (Get Manifests over its days): a manifest
        fulfil does not know that holds a shipment the transmit meant to send is its own."""
        if not self.store.extend_lease(transmit.transmit_id, lease_seconds=self.settings.lease_seconds):
            return transmit.result(IN_PROGRESS, message=f"{why}; another run took it over to settle it")
        settles_at, now = self.store.transmit_settles(
            transmit.group_id,
            transmit.started_at,
            deadline_seconds=self.settings.deadline,
            allowance_seconds=self.settings.settle_allowance,
        )
        start = canada_post_day(transmit.started_at)
        end = max(start, canada_post_day(now))
        meant = set(transmit.included)
        found: list[_Found] = []
        try:
            links = self.client.manifests_between(transmit.group_id, start, end)
            known = self.store.known_manifests([link.manifest_id for link in links])
            for link in links:
                if link.manifest_id in known:
                    continue
                self.store.extend_lease(transmit.transmit_id, lease_seconds=self.settings.lease_seconds)
                info = self.client.manifest(transmit.group_id, link.href, link.media_type)
                shipment_ids = self.client.shipment_ids_at(
                    transmit.group_id,
                    info.href("manifestShipments") or "",
                    info.media_type("manifestShipments"),
                )
                if meant & set(shipment_ids):
                    found.append(_Found(link, info, shipment_ids))
        except CanadaPostUnavailable as exc:
            error = f"{why}; Canada Post's manifests could not be read ({exc}); the next run settles it"
            self.store.leave_unsettled(transmit.transmit_id, error)
            return transmit.result(UNSETTLED, error=error)
        if found:
            return self._record_transmitted(
                transmit, [item.link for item in found], FOUND_BY_LOOK_UP, read=found
            )
        if now >= settles_at:
            error = (
                f"{why}; Canada Post lists no manifest with its shipments from {start} to {end}, read "
                "after the transmit could still have been made: it was not transmitted"
            )
            self.store.release(transmit.transmit_id, status=STATUS_NOT_SENT, error=error)
            return transmit.result(
                NOT_SENT, error=error, message="proven not transmitted; the next run sends it"
            )
        error = (
            f"{why}; Canada Post shows no manifest with its shipments yet; it is settled by the "
            f"first run after {settles_at:%Y-%m-%d %H:%M:%S %Z}, never sent again before"
        )
        self.store.leave_unsettled(transmit.transmit_id, error)
        return transmit.result(UNSETTLED, error=error)

    def _record_transmitted(
        self,
        transmit: _Transmit,
        links: list[ManifestLink],
        found_by: str,
        read: Sequence[_Found] = (),
    ) -> TransmitResult:
        recorded = self.store.settle_transmitted(
            transmit.transmit_id, [(link.manifest_id, link.href) for link in links], found_by=found_by
        )
        if recorded is None:
            return transmit.result(
                IN_PROGRESS, message="another run took the transmit over before it was recorded"
            )
        for item in read:
            manifest_id = recorded.get(item.link.manifest_id)
            if manifest_id is None:
                continue
            self._record_read(manifest_id, item.info)
            self.store.record_manifest_shipments(manifest_id, item.shipment_ids)
        for row in self.store.unfinished_manifests():
            if int(row["transmit_id"]) == transmit.transmit_id:
                self._finish(row)
        return transmit.result(
            TRANSMITTED, found_by=found_by, manifests=self._summaries(transmit.transmit_id)
        )

    # --- manifests --------------------------------------------------------------------------------

    def _finish(self, row: dict[str, Any]) -> None:
        """Each step a manifest still lacks: Get Manifest, the shipments on it, its PDF. A step
        that fails is recorded on the manifest (last_error) and done by a later run."""
        manifest_id = int(row["manifest_id"])
        group_id = row["group_id"]
        try:
            if row["read_at"] is None:
                info = self.client.manifest(group_id, row["manifest_url"], None)
                self._record_read(manifest_id, info)
                row = {
                    **row,
                    "po_number": info.po_number,
                    "shipments_url": info.href("manifestShipments"),
                    "artifact_url": info.href("artifact"),
                    "artifact_media_type": info.media_type("artifact"),
                    "shipments_media_type": info.media_type("manifestShipments"),
                }
            if row["shipments_listed_at"] is None:
                shipment_ids = self.client.shipment_ids_at(
                    group_id, row["shipments_url"], row.get("shipments_media_type")
                )
                self.store.record_manifest_shipments(manifest_id, shipment_ids)
            if row["pdf_path"] is None:
                self._save_pdf(manifest_id, row)
        except CanadaPostUnavailable as exc:
            self.store.record_manifest_error(manifest_id, str(exc))

    def _record_read(self, manifest_id: int, info: ManifestInfo) -> None:
        self.store.record_manifest_read(
            manifest_id,
            po_number=info.po_number,
            details_url=info.href("details"),
            shipments_url=info.href("manifestShipments"),
            artifact_url=info.href("artifact"),
            artifact_media_type=info.media_type("artifact"),
        )

    def _save_pdf(self, manifest_id: int, row: dict[str, Any]) -> None:
        outcome = self.client.fetch_artifact(row["group_id"], row["artifact_url"], row["artifact_media_type"])
        if not outcome.ok:
            error = interpret_error(outcome)
            if error.kind is ErrorKind.AUTH:
                raise auth_error(error)
            self.store.record_manifest_error(manifest_id, f"the manifest's PDF could not be fetched: {error}")
            return
        name = f"manifest-{row['manifest_date']:%Y-%m-%d}-{row['po_number']}"
        try:
            saved = write_label(self.settings.manifests_dir, name, outcome.body)
        except OSError as exc:
            self.store.record_manifest_error(
                manifest_id,
                f"the manifest's PDF could not be written to {self.settings.manifests_dir}: {exc}",
            )
            return
        self.store.record_manifest_pdf(
            manifest_id, path=str(saved.path), sha256=saved.sha256, size=saved.size
        )

    def _summaries(self, transmit_id: int) -> list[dict[str, Any]]:
        return [
            {
                "manifest_id": row["cp_manifest_id"],
                "po_number": row["po_number"],
                "shipments": row["shipment_count"],
                "pdf_path": row["pdf_path"],
                "error": row["last_error"],
            }
            for row in self.store.manifests_of_transmit(transmit_id)
        ]

    def _group_manifests(self, group_id: str) -> list[dict[str, Any]]:
        return [
            {
                "manifest_id": row["cp_manifest_id"],
                "po_number": row["po_number"],
                "shipments": row["shipment_count"],
                "pdf_path": None,
                "error": None,
            }
            for row in self.store.manifests_of_group(group_id)
        ]


def _left_out_because(row: dict[str, Any]) -> tuple[str | None, bool]:
    """Why a shipment of the group is not transmitted (None: it is), and whether that needs a
    person (a label fulfil does not hold as its own)."""
    if row["shipment_id"] is None:
        if row["surplus"]:
            return (
                "a surplus label: void it, or keep it (`fulfil labels keep`), before it is transmitted",
                True,
            )
        return (
            "not a label fulfil recorded (a purchase not settled yet?): `fulfil labels reconcile`, then "
            "`fulfil manifest transmit` again",
            True,
        )
    status = row["status"]
    if status in _VOIDING:
        return f"the label is {status}", False
    if status == S.ORDER_CANCELED or row["order_status"] == ORDER_STATUS_CANCELED:
        return "its order was canceled on Best Buy: void the label (`fulfil labels void`)", False
    if status == S.NEEDS_REVIEW:
        return "its shipment needs review (`fulfil status`)", True
    if status in _TRANSMITTABLE:
        return None, False
    return f"its shipment is {status}, not a label to transmit", True


@contextlib.contextmanager
def transmitter(session: Session) -> Iterator[Transmitter]:
    """The transmitter of this run: Canada Post's audited HTTP (its budgets shared with every
    process), the manifest store on its own connection, leases sized from the retry policies."""
    from fulfil.audit.retry import lease_seconds
    from fulfil.canadapost.client import RETRY_NOT_SENT, RETRY_READS
    from fulfil.canadapost.sender import sender_address
    from fulfil.services import service_budgets

    settings = session.settings
    canadapost = settings.canadapost()
    if not canadapost.contract:
        raise ConfigError(
            "end-of-day manifests are for contract shipping: set FULFIL_CANADAPOST_CONTRACT_ID "
            "(non-contract labels are final when bought and have no manifest)"
        )
    sender = sender_address(settings.sender())
    http_settings = settings.http()
    manifests_dir = settings.labels_dir / "manifests"
    check_labels_dir(manifests_dir)
    admission_wait = service_budgets(settings, "CanadaPost").max_wait
    transmit_settings = TransmitSettings(
        canadapost=canadapost,
        sender=sender,
        manifests_dir=manifests_dir,
        lease_seconds=lease_seconds(
            http_settings.deadline, RETRY_READS, RETRY_NOT_SENT, admission_wait=admission_wait
        ),
        deadline=http_settings.deadline,
        settle_allowance=http_settings.read_timeout,
    )
    http = session.canadapost_http()
    try:
        with ManifestStore.open(
            session.database_url, owner=session.run.lease_owner, run_id=session.run.run_id
        ) as store:
            yield Transmitter(transmit_settings, ManifestClient(canadapost, http), store)
    finally:
        http.close()
