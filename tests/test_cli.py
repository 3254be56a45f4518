import json
import re

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


def test_help_lists_pipeline_steps_apart_from_tools():
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    text = result.output
    steps, tools = text.index("Pipeline steps"), text.index("Tools")
    for command in ("prepare", "plan", "train-shard", "aggregate", "validate", "proxies", "search-suite", "analyse"):
        assert re.search(rf"│ {command}\b", text[steps:tools] if steps < tools else text[steps:]), command
    for command in ("query", "search", "pipeline", "check-params", "space"):
        assert re.search(rf"│ {command}\b", text[tools:] if tools > steps else text[tools:steps]), command


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch):
    """A NasforgeError is the user's to fix: one line, exit 2. Anything else is nasforge's bug: it propagates."""
    from nasforge import spaces
    from nasforge.errors import InputError

    def refuse(name):
        raise InputError("that space is closed today")

    monkeypatch.setattr(spaces, "get_space", refuse)
    monkeypatch.setattr("nasforge.cli.get_space", refuse)
    result = CliRunner().invoke(app, ["space", "tss", "0"])
    assert result.exit_code == 2 and result.output.strip() == "error: that space is closed today"

    def crash(name):
        raise KeyError("a bug")

    monkeypatch.setattr("nasforge.cli.get_space", crash)
    result = CliRunner().invoke(app, ["space", "tss", "0"])
    assert isinstance(result.exception, KeyError)
