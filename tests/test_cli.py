import json

from typer.testing import CliRunner

from nasforge.cli import app

runner = CliRunner()


def test_space_lookup_by_index():
    result = runner.invoke(app, ["space", "tss", "0"])
    assert result.exit_code == 0, result.output
    assert "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|" in result.output
    assert "canonical" in result.output and "params_M" in result.output and "flops_M" in result.output


def test_space_lookup_by_string_json():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    result = runner.invoke(app, ["space", "tss", arch, "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["arch"] == arch and info["params_M"] == 1.531546 and round(info["flops_M"], 2) == 220.12
    assert get_index(arch) == info["index"]


def get_index(arch):
    from nasforge.spaces import get_space

    return get_space("tss").index(arch)


def test_space_bad_input_is_a_clear_error():
    result = runner.invoke(app, ["space", "sss", "64:64"])
    assert result.exit_code == 2
    assert "expected an SSS arch string" in result.output
    result = runner.invoke(app, ["space", "nb101", "0"])
    assert result.exit_code == 2 and "expected one of" in result.output


def test_help_everywhere():
    for args in (["--help"], ["space", "--help"], ["spaces", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output
