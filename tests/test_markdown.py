"""The one markdown table renderer."""

from __future__ import annotations

import pytest

from hf_modular.markdown import markdown_table


def test_markdown_table_aligns_each_column_and_refuses_a_bad_alignment():
    table = markdown_table(["name", "value"], [["a", 1], ["b", 2.5]], align="lr")
    assert table == "| name | value |\n|---|---:|\n| a | 1 |\n| b | 2.5 |"
    assert markdown_table(["x"], []) == "| x |\n|---:|"
    with pytest.raises(ValueError, match="align='l' needs one 'l' or 'r' per column \\(2\\)"):
        markdown_table(["a", "b"], [], align="l")
