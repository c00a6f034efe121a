import pytest

from models import DCGANConfig


def test_defaults_are_the_tutorials() -> None:
    c = DCGANConfig()
    assert (c.nz, c.ngf, c.ndf, c.channels, c.image_size) == (100, 64, 64, 3, 64)
    assert c.n_blocks == 3


def test_json_round_trip() -> None:
    c = DCGANConfig(nz=32, ngf=16, ndf=24, channels=1, image_size=128)
    assert DCGANConfig.from_json(c.to_json()) == c


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"image_size": 48}, "image_size"),
        ({"nz": 0}, "nz"),
        ({"ngf": 10**9}, "ngf"),
        ({"ndf": 2.5}, "ndf"),
        ({"channels": 4}, "channels"),
        ({"nz": True}, "nz"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DCGANConfig(**kwargs)


def test_from_dict_refuses_unknown_and_missing_keys() -> None:
    data = DCGANConfig().to_dict()
    with pytest.raises(ValueError, match="keys"):
        DCGANConfig.from_dict({**data, "evil": 1})
    data.pop("nz")
    with pytest.raises(ValueError, match="keys"):
        DCGANConfig.from_dict(data)
    with pytest.raises(ValueError, match="JSON object"):
        DCGANConfig.from_dict([1, 2])
