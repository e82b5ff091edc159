from __future__ import annotations

from typing import Any

import pytest

from models.spinner_language.expressions import ExpressionError, compile_expression

METADATA = {
    "amount": "150",
    "country": "FR",
    "vip": "false",
    "name": "Ann Lee",
    "due": "2024-03-01",
}
OUTPUTS: dict[str, Any] = {
    "disposition": "Retry",
    "score": 7,
    "tags": ["vip", "late"],
    "callback": {"status": "paid"},
}
CONTEXT = {"jobId": "job-1", "recordId": "rec-9"}


def check(source: str, **outputs: Any) -> bool:
    return compile_expression(source).evaluate(METADATA, {**OUTPUTS, **outputs}, CONTEXT)


class TestComparisons:
    def test_numeric_string_compares_as_number(self) -> None:
        assert check("amount > 100")
        assert not check("amount > 1000")
        assert check("amount == 150")
        assert check("score > '5'")

    def test_chained_comparison(self) -> None:
        assert check("100 < amount <= 150")
        assert not check("100 < amount < 150")

    def test_text_compares_as_text(self) -> None:
        assert check('country == "FR"')
        assert check('due < "2024-04-01"')

    def test_text_against_number_is_false_not_an_error(self) -> None:
        assert not check("name > 5")
        assert not check("name == 5")

    def test_true_false_match_csv_text(self) -> None:
        assert check("vip == false")
        assert check("vip == False")
        assert not check("vip")

    def test_negative_numbers(self) -> None:
        assert check("amount > -5")


class TestMissingValues:
    def test_missing_is_equal_to_null_only(self) -> None:
        assert check("missing == null")
        assert check("missing == None")
        assert not check("missing != null")
        assert not check("missing == 0")

    def test_ordering_with_missing_is_false(self) -> None:
        assert not check("missing > 1")
        assert not check("missing < 1")

    def test_membership_of_missing_is_false(self) -> None:
        assert not check('missing in ["a"]')
        assert check('missing not in ["a"]')


class TestMembershipAndLogic:
    def test_in_list_literal(self) -> None:
        assert check('country in ["FR", "BE"]')
        assert not check('country in ["DE"]')
        assert check('country not in ["DE"]')

    def test_in_list_value_and_string(self) -> None:
        assert check('"vip" in tags')
        assert check('"Lee" in name')

    def test_in_list_compares_numbers_with_numeric_text(self) -> None:
        assert check("amount in [100, 150]")

    def test_and_or_not(self) -> None:
        assert check('disposition == "Retry" and score >= 7')
        assert check('disposition == "Done" or score >= 7')
        assert not check('not (disposition == "Retry")')
        assert check("(score > 5) and (amount < 200 or false)")


class TestNames:
    def test_bare_name_prefers_outputs(self) -> None:
        assert check('country == "BE"', country="BE")

    def test_namespaces(self) -> None:
        assert check('payload.country == "FR"', country="BE")
        assert check('output.country == "BE"', country="BE")
        assert check('context.jobId == "job-1"')
        assert check('output.callback.status == "paid"')

    def test_references(self) -> None:
        expr = compile_expression('amount > 1 and payload.country == "FR" or output.x.y and amount')
        assert expr.references() == ["amount", "payload.country", "output.x.y"]


class TestRejected:
    @pytest.mark.parametrize(
        ("source", "reason"),
        [
            ("__import__('os').system('id')", "function calls"),
            ("name.upper() == 'ANN'", "function calls"),
            ("''.__class__", "names like payload.x"),
            ("name.__class__", "'__'"),
            ("tags[0] == 'vip'", "indexing"),
            ("amount * 2 > 100", "arithmetic"),
            ("(lambda: 1)", "lambdas"),
            ("[x for x in tags]", "comprehensions"),
            ("x if y else z", "separate branches"),
            ("x is None", "== null"),
            ("(x := 1)", "assignments"),
            ("f'{name}' == 'Ann'", "f-strings"),
            ("amount > 1 && vip", "and' / 'or"),
            ("", "empty"),
        ],
    )
    def test_refused_with_a_clear_message(self, source: str, reason: str) -> None:
        with pytest.raises(ExpressionError, match=reason.replace("(", r"\(")):
            compile_expression(source)

    def test_error_gives_the_column(self) -> None:
        with pytest.raises(ExpressionError, match="column 15"):
            compile_expression("amount > 1 or foo()")

    def test_deep_nesting_is_refused(self) -> None:
        with pytest.raises(ExpressionError, match="nested too deeply"):
            compile_expression("not " * 200 + "vip")

    def test_compiled_once(self) -> None:
        assert compile_expression("score > 1") is compile_expression("score > 1")
