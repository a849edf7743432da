"""Settings: environment over file, secrets only from the environment, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulfil.config import SETTINGS, load_settings, mask
from fulfil.errors import ConfigError

pytestmark = pytest.mark.unit

CP_ENV = {
    "FULFIL_CANADAPOST_USERNAME": "user",
    "FULFIL_CANADAPOST_PASSWORD": "a-long-password",
    "FULFIL_CANADAPOST_CUSTOMER_NUMBER": "2004381",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fulfil.toml"
    path.write_text(text)
    return path


def test_defaults_with_nothing_configured(tmp_path: Path) -> None:
    settings = load_settings({}, tmp_path)
    assert settings.config_file is None
    assert settings.database_url is None
    assert settings.labels_dir == tmp_path / "labels"
    assert settings.get("FULFIL_CANADAPOST_ENV").source == "default"
    assert settings.value("FULFIL_BESTBUY_CARRIER_CODE") == "CPCL"
    assert settings.value("FULFIL_CANADAPOST_SERVICE_CODE") == "DOM.EP"


def test_fulfil_toml_in_the_working_directory_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    write(
        tmp_path, '[canadapost]\nservice_code = "DOM.RP"\nlabel_format = "4x6"\n[sender]\ncity = "Ottawa"\n'
    )
    settings = load_settings({**CP_ENV, "FULFIL_CANADAPOST_SERVICE_CODE": "DOM.XP"}, tmp_path)
    cp = settings.canadapost()
    assert cp.service_code == "DOM.XP"
    assert settings.get("FULFIL_CANADAPOST_SERVICE_CODE").source == "environment"
    assert cp.label_format == "4x6"
    assert settings.get("FULFIL_CANADAPOST_LABEL_FORMAT").source == "file"
    assert settings.value("FULFIL_SENDER_CITY") == "Ottawa"


def test_canadapost_env_selects_the_host_and_base_url_overrides_it(tmp_path: Path) -> None:
    assert load_settings(CP_ENV, tmp_path).canadapost().base_url == "https://ct.soa-gw.canadapost.ca"
    production = load_settings({**CP_ENV, "FULFIL_CANADAPOST_ENV": "production"}, tmp_path).canadapost()
    assert production.base_url == "https://soa-gw.canadapost.ca"
    local = {**CP_ENV, "FULFIL_CANADAPOST_BASE_URL": "http://127.0.0.1:8765/"}
    assert load_settings(local, tmp_path).canadapost().base_url == "http://127.0.0.1:8765"


def test_contract_id_selects_contract_shipping(tmp_path: Path) -> None:
    assert not load_settings(CP_ENV, tmp_path).canadapost().contract
    contract = load_settings({**CP_ENV, "FULFIL_CANADAPOST_CONTRACT_ID": "0042708517"}, tmp_path).canadapost()
    assert contract.contract
    assert contract.contract_id == "0042708517"


def test_missing_credentials_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"FULFIL_CANADAPOST_USERNAME": "u"}, tmp_path).canadapost()
    assert "FULFIL_CANADAPOST_PASSWORD" in str(error.value)
    assert "FULFIL_CANADAPOST_CUSTOMER_NUMBER" in str(error.value)
    assert "FULFIL_CANADAPOST_USERNAME" not in str(error.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FULFIL_CANADAPOST_ENV": "staging"}, "FULFIL_CANADAPOST_ENV"),
        ({"FULFIL_CANADAPOST_LABEL_FORMAT": "A4"}, "FULFIL_CANADAPOST_LABEL_FORMAT"),
        ({"FULFIL_CANADAPOST_CUSTOMER_NUMBER": "12-34"}, "FULFIL_CANADAPOST_CUSTOMER_NUMBER"),
        ({"FULFIL_CANADAPOST_BASE_URL": "ftp://x"}, "FULFIL_CANADAPOST_BASE_URL"),
    ],
)
def test_invalid_values_are_refused_naming_the_variable(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({**CP_ENV, **env}, tmp_path).canadapost()


def test_parcel_weight_is_required_and_numeric(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"FULFIL_PARCEL_WEIGHT_KG \(or \[parcel\] weight_kg"):
        load_settings({}, tmp_path).parcel()
    write(tmp_path, "[parcel]\nweight_kg = 'heavy'\n")
    with pytest.raises(ConfigError, match="expected a number"):
        load_settings({}, tmp_path).parcel()
    write(tmp_path, "[parcel]\nweight_kg = 1.25\nlength_cm = 30\n")
    parcel = load_settings({}, tmp_path).parcel()
    assert str(parcel.weight_kg) == "1.25"
    assert parcel.width_cm is None


def test_sender_lists_every_missing_key(tmp_path: Path) -> None:
    write(tmp_path, '[sender]\ncompany = "Example Co"\n')
    with pytest.raises(ConfigError) as error:
        load_settings({}, tmp_path).sender()
    message = str(error.value)
    assert "FULFIL_SENDER_PHONE" in message
    assert (
        "(or phone, address_line_1, city, province, postal_code under [sender] in the config file)" in message
    )
    assert "COMPANY" not in message
    assert "company" not in message


def test_a_secret_in_the_file_is_refused_not_used(tmp_path: Path) -> None:
    write(tmp_path, '[canadapost]\npassword = "hunter2-hunter2"\n')
    with pytest.raises(ConfigError) as error:
        load_settings({}, tmp_path)
    assert "FULFIL_CANADAPOST_PASSWORD" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_unknown_keys_and_bad_toml_are_errors(tmp_path: Path) -> None:
    write(tmp_path, "[canadapost]\nservise_code = 'DOM.EP'\n")
    with pytest.raises(ConfigError, match=r"unknown setting canadapost\.servise_code"):
        load_settings({}, tmp_path)
    write(tmp_path, "[canadapost\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, tmp_path)


def test_fulfil_config_names_the_file_and_must_exist(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text("[bestbuy]\ncarrier_code = 'CPCL'\nshop_id = 2001\n")
    settings = load_settings({"FULFIL_CONFIG": str(other), "FULFIL_BESTBUY_API_KEY": "k" * 20}, tmp_path)
    assert settings.config_file == other
    assert settings.bestbuy().shop_id == "2001"
    with pytest.raises(ConfigError, match="FULFIL_CONFIG"):
        load_settings({"FULFIL_CONFIG": str(tmp_path / "missing.toml")}, tmp_path)


def test_secrets_are_masked_when_displayed(tmp_path: Path) -> None:
    settings = load_settings({**CP_ENV, "FULFIL_BESTBUY_API_KEY": "abcdef0123456789"}, tmp_path)
    assert settings.get("FULFIL_BESTBUY_API_KEY").display() == "ab****89"
    assert settings.get("FULFIL_CANADAPOST_CUSTOMER_NUMBER").display() == "2004381"
    assert mask("short") == "****"
    assert set(settings.secrets()) == {"user", "a-long-password", "abcdef0123456789"}


def test_every_secret_is_environment_only() -> None:
    assert all(spec.file_key is None for spec in SETTINGS if spec.secret)
