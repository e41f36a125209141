"""Recipes: built-in names and user paths resolve, and bad input is a RecipeError."""

import os

import pytest

from anomalygen.errors import RecipeError
from anomalygen.recipes import builtin_recipes, get_key, load_recipe, require


def test_builtin_name_wins_over_a_same_named_folder(tmp_path, monkeypatch):
    name = sorted(builtin_recipes())[0]
    (tmp_path / name).mkdir()  # e.g. running from the repo root, where detectors/ is a folder
    monkeypatch.chdir(tmp_path)
    assert load_recipe(name)["_source"].endswith(f"{name}.yaml")


def test_user_file_overrides_and_errors(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("a:\n  b: 3\n  r: [0.01, 0.1]\n")
    r = load_recipe(p, {"a.b": 5, "c.d": "x"})
    assert get_key(r, "a.b") == 5 and get_key(r, "c.d") == "x"
    assert require(r, "a.r", float, 0, 1) == [0.01, 0.1]
    with pytest.raises(RecipeError, match="outside"):
        require(r, "a.b", int, 0, 4)
    with pytest.raises(RecipeError, match="lacks key"):
        get_key(r, "a.zzz")
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="no recipe named"):
        load_recipe("no-such-recipe")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")
