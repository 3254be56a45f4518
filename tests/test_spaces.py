import random

import pytest

from nasforge.spaces import get_space, tss


def test_sizes():
    assert len(get_space("tss")) == 15_625
    assert len(get_space("sss")) == 32_768


@pytest.mark.parametrize("name", ["tss", "sss"])
def test_index_string_round_trip_for_every_arch(name):
    space = get_space(name)
    archs = list(space)
    assert len(set(archs)) == len(space)
    for i, arch in enumerate(archs):
        assert space.index(arch) == i
        assert space.arch(i) == arch


def test_tss_published_anchors():
    space = get_space("tss")
    assert space.arch(0) == "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert space.arch(9) == "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    assert space.arch(123) == "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def test_sss_published_order():
    space = get_space("sss")
    assert space.arch(0) == "8:8:8:8:8"
    assert space.arch(1) == "8:8:8:8:16"
    assert space.arch(8) == "8:8:8:16:8"
    assert space.arch(32767) == "64:64:64:64:64"


def test_tss_unique_topologies():
    assert get_space("tss").unique_count() == 6466


def test_isomorphic_pairs_share_canonical_form():
    space = get_space("tss")
    # An edge that cannot reach the output does not matter: node 1 unused when its out-edges are none.
    a = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
    b = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
    assert space.canonical(a) == space.canonical(b)
    # skip_connect is the identity: routing x through node 1 by skip equals reading x directly.
    c = "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"
    d = "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|"
    assert space.canonical(c) == space.canonical(d)
    # The same ops on different inputs are different functions.
    e = "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|"
    f = "|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"
    assert space.canonical(e) != space.canonical(f)
    # ... unless node 1 is x itself (skip), when swapping which op reads which is the same function.
    g = "|skip_connect~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|"
    h = "|skip_connect~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"
    assert space.canonical(g) == space.canonical(h)
    # Different functions stay apart.
    all_conv = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert space.canonical(all_conv) == all_conv
    assert space.canonical(a) != space.canonical(all_conv)


def test_canonical_is_the_lowest_index_of_its_class():
    space = get_space("tss")
    rng = random.Random(0)
    for i in rng.sample(range(len(space)), 200):
        rep = space.canonical_index(i)
        assert rep <= i
        assert space.canonical_index(rep) == rep
        assert tss.isomorphism_key(tss.parse_arch(space.arch(rep))) == tss.isomorphism_key(tss.parse_arch(space.arch(i)))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "|nor_conv_3x3~0|",
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~0|+|none~0|+|none~0|none~1|none~2|",
        "64:64:64:64:64",
    ],
)
def test_tss_bad_strings(bad):
    with pytest.raises(ValueError, match="expected a TSS arch string"):
        get_space("tss").index(bad)


@pytest.mark.parametrize("bad", ["64:64:64:64", "64:64:64:64:65", "0:8:8:8:8", "a:b:c:d:e", "8:8:8:8:8:8"])
def test_sss_bad_strings(bad):
    with pytest.raises(ValueError, match="expected an SSS arch string"):
        get_space("sss").index(bad)


@pytest.mark.parametrize("name,bad", [("tss", -1), ("tss", 15625), ("sss", 32768), ("sss", 1.5), ("tss", True)])
def test_bad_indices(name, bad):
    with pytest.raises(ValueError, match="expected an? (TSS|SSS) index"):
        get_space(name).arch(bad)


def test_unknown_space():
    with pytest.raises(ValueError, match="expected one of"):
        get_space("nb101")
    assert get_space("TSS") is get_space("tss")


@pytest.mark.parametrize("name", ["tss", "sss"])
def test_every_space_answers_what_the_phases_ask(name):
    """The Space interface the phases use instead of branching on a name: encoding, canonical
    form, skeleton, network config, padding; each checked against the space's own strings."""
    from nasforge.spaces import SPACES, Space

    space = get_space(name)
    assert isinstance(space, Space) and isinstance(space, SPACES[name]) and get_space(space) is space
    for index in (0, 1, 777, len(space) - 1):
        arch = space.arch(index)
        code = space.encode(arch)
        assert code == space.encode(index) and space.decode(code) == arch
        assert len(code) == len(space.parse(arch)) and all(0 <= c < space.choices for c in code)
        canonical = space.canonical_index(index)
        assert canonical <= index and space.canonical(arch) == space.arch(canonical)
        ops, layers = space.skeleton(arch)
        assert len(ops) == 6 and all(isinstance(c, int) and isinstance(r, bool) for c, r in layers)
        assert space.net_config(arch, 10)["num_classes"] == 10
    assert space.unique_count() == (6466 if name == "tss" else len(space))


def test_space_specific_answers():
    tss, sss = get_space("tss"), get_space("sss")
    assert tss.input_independent("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert not tss.input_independent("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|")
    assert tss.input_independent("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|")  # 0 -> 1 cut
    assert not any(sss.input_independent(sss.arch(i)) for i in (0, 100, 32767))
    assert sss.pads_groups and not tss.pads_groups
    assert sss.widest(["8:64:8:16:8", "16:8:24:8:64"]) == "16:64:24:16:64"
    with pytest.raises(NotImplementedError):
        tss.widest([tss.arch(0)])
    assert sss.canonical_index("64:64:64:64:64") == 32767  # no isomorphs: itself
    _, layers = sss.skeleton("8:16:24:32:40")
    assert layers == [(8, False), (16, True), (24, False), (32, True), (40, False)]
    assert tss.net_config(tss.arch(0), 100) == {"name": "infer.tiny", "C": 16, "N": 5, "arch_str": tss.arch(0),
                                                "num_classes": 100}
