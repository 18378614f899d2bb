"""The approval checks of a catalogue entry (审批前检查): each check passes on a well-made entry and fails, with its
reason in English and Chinese, on the entry spoilt in its way; a failed check refuses the submission, and the
bureau's approval while it still fails."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image

from certstore.access import Principal, Role
from certstore.app import Application
from certstore.catalogue import CatalogueEntry, shipped_entries
from certstore.keystore import KeyStore
from certstore.services import catalogue
from certstore.services.catalogue_assets import store_asset
from certstore.services.catalogue_checks import CheckName, EntryCheckError, longest_face
from certstore.services.keys import init_dev_keys
from certstore.services.seals import entry_seal_check
from certstore.store.repository import Repository
from tests.support import catalogue_entries as ce
from tests.support import issuing

AGENCY = Principal(7, "li.si", Role.AGENCY, ce.ISSUER["credit_code"], ce.ISSUER["name"])
BUREAU = Principal(9, "qian.qi", Role.BUREAU, "11410100MB1700000X", "郑州市大数据管理局")
#: The checks themselves do not depend on the database (the storage is covered by the approval test and
#: test_catalogue_assets on both): SQLite only, to keep the suite's time.
SQLITE_ONLY = pytest.mark.parametrize("database_backend", ["sqlite"])
OTHER = next(e.issuer for e in shipped_entries() if e.issuer.credit_code != ce.ISSUER["credit_code"])


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store, now=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))
    return store


@pytest.fixture
def app(repo: Repository, keystore: KeyStore) -> Application:
    return issuing.application(repo, keystore)


def _document(app: Application, *, template: dict[str, Any] | None = None, seal: str = "default",
              image: bytes | None = None) -> dict[str, Any]:  # fmt: skip
    asset, _ = store_asset(app.repo, image or ce.base_image_png(), principal=AGENCY)
    document = ce.entry_document(base_image=asset.name, seal=seal)
    document["face_template"] = template if template is not None else ce.template()
    return document


def _checks(app: Application, document: dict[str, Any]) -> dict[CheckName, Any]:
    entry = CatalogueEntry.from_document(document)
    checks = catalogue.check_submission(app.repo, entry, seal_check=entry_seal_check(app))
    return {r.name: r for r in checks.results}


def test_a_well_made_entry_passes_every_check_and_the_bureau_approves_it(app: Application) -> None:
    """Seal, base image, template, fields and the longest values all pass; the submission is stored pending, the
    bureau sees the same checks and a preview of the page, approves, and issuance then finds the entry with its
    uploaded base image."""
    check = entry_seal_check(app)
    submitted, created = catalogue.submit_entry(app.repo, _document(app), principal=AGENCY, seal_check=check)
    assert created and submitted.status == "pending"
    _, checks = catalogue.submission_checks(app.repo, ce.CODE, 1, principal=BUREAU, seal_check=check)
    assert [r.name for r in checks.results] == list(CheckName) and checks.passed
    assert all(r.reason and r.reason_zh for r in checks.results)
    png = checks.preview()
    assert png is not None
    with Image.open(io.BytesIO(png)) as preview:
        assert abs(preview.width / preview.height - 210 / 297) < 0.01
    catalogue.review_entry(app.repo, ce.CODE, 1, approve=True, reviewer=BUREAU, seal_check=check)
    entry = catalogue.get_entry(app.repo, ce.CODE)
    assert entry.version == 1 and entry.base_image_data is not None and entry.face_template is not None


@SQLITE_ONLY
def test_another_organisations_seal_is_refused_at_submission(app: Application) -> None:
    """An entry naming a seal registered to another organisation fails ``seal_owner`` and is not stored."""
    with pytest.raises(EntryCheckError, match="not to the issuer") as refused:
        catalogue.submit_entry(app.repo, _document(app, seal=OTHER.credit_code), principal=AGENCY,
                               seal_check=entry_seal_check(app))  # fmt: skip
    (failed,) = refused.value.checks.failed
    assert failed.name is CheckName.SEAL_OWNER and failed.path == "seal"
    assert "不属于颁证单位" in failed.reason_zh and ce.ISSUER["name"] in failed.reason_zh
    assert ce.CODE not in {s.entry.code for s in catalogue.list_submissions(app.repo)}


@SQLITE_ONLY
def test_the_longest_example_that_overflows_its_box_is_named(app: Application) -> None:
    """A value box too small for the longest example of 工程名称 fails ``longest_values_fit``, naming the field."""
    with pytest.raises(EntryCheckError) as refused:
        catalogue.submit_entry(app.repo, _document(app, template=ce.template(cramped=True)), principal=AGENCY)
    (failed,) = refused.value.checks.failed
    assert failed.name is CheckName.LONGEST_VALUES_FIT
    assert failed.path == "$.face_schema.properties.project_name"
    assert "project_name" in failed.reason and "工程名称" in failed.reason_zh
    assert refused.value.checks.layout is None


@SQLITE_ONLY
def test_overlapping_boxes_fail(app: Application) -> None:
    """Two fields placed over each other fail ``longest_values_fit``, naming both."""
    template = ce.template()
    template["fields"]["location"]["value"]["box"] = [62, 92, 122, 16]  # over the project name's second line
    failed = _checks(app, _document(app, template=template))[CheckName.LONGEST_VALUES_FIT]
    assert not failed.passed and "overlaps" in failed.reason and "重叠" in failed.reason_zh
    assert "project_name" in failed.reason and "location" in failed.reason
    assert failed.path.startswith("$.face_schema.properties.")


@SQLITE_ONLY
def test_a_required_field_without_a_box_fails(app: Application) -> None:
    """A template that does not place the required 挖掘面积 fails ``fields_placed``."""
    template = ce.template()
    del template["fields"]["area"]
    result = _checks(app, _document(app, template=template))[CheckName.FIELDS_PLACED]
    assert not result.passed and "area" in result.reason and "挖掘面积" in result.reason_zh


@SQLITE_ONLY
def test_an_invalid_template_fails_with_its_path(app: Application) -> None:
    """A box leaving the page fails ``template`` with the template path; the layout check is not run."""
    template = ce.template()
    template["fields"]["area"]["value"]["box"] = [62, 140, 170, 8]
    results = _checks(app, _document(app, template=template))
    assert not results[CheckName.TEMPLATE].passed
    assert "/fields/area/value/box" in results[CheckName.TEMPLATE].reason
    assert not results[CheckName.LONGEST_VALUES_FIT].passed
    assert "未执行" in results[CheckName.LONGEST_VALUES_FIT].reason_zh


@SQLITE_ONLY
def test_a_missing_or_mismatched_base_image_fails(app: Application) -> None:
    """An ``asset:`` name not uploaded here fails ``base_image``; so does an A5 image on an A4 template."""
    document = _document(app)
    document["base_image"] = "asset:" + "0" * 64
    missing = _checks(app, document)[CheckName.BASE_IMAGE]
    assert not missing.passed and "upload it first" in missing.reason
    a5 = _checks(app, _document(app, image=ce.base_image_png(size_mm=(148, 210))))[CheckName.BASE_IMAGE]
    assert not a5.passed and "148.0 × 210.0 mm" in a5.reason and "不符" in a5.reason_zh


def test_approval_is_refused_while_a_check_fails(app: Application) -> None:
    """A pending version stored without the checks (as before them) cannot be approved while its longest value
    overflows; it can be rejected."""
    entry = CatalogueEntry.from_document(_document(app, template=ce.template(cramped=True)))
    catalogue.register_entry(app.repo, entry, status="pending", submitted_by=AGENCY.ref)
    with pytest.raises(EntryCheckError, match="longest_values_fit"):
        catalogue.review_entry(app.repo, ce.CODE, 1, approve=True, reviewer=BUREAU)
    assert catalogue.get_submission(app.repo, ce.CODE, 1).status == "pending"
    rejected = catalogue.review_entry(
        app.repo, ce.CODE, 1, approve=False, reviewer=BUREAU, note="工程名称放不下"
    )
    assert rejected.status == "rejected"


def test_the_longest_values_follow_the_documented_rule() -> None:
    """The longest of each field's examples; a string field without examples gets maxLength wide characters."""
    document = ce.entry_document()
    del document["face_schema"]["properties"]["location"]["examples"]
    face = longest_face(CatalogueEntry.from_document(document))
    assert face["project_name"] == ce.LONG_NAME and face["area"] == 1288.75
    assert face["location"] == "国" * 80
