"""The MATH/GSM8K reward on answers in the formats the datasets really use: a table of
(reference, completion, right?) cases, each a verdict the reward must give.

References are written as MATH stores them (the bare content of the solution's last \\boxed{}:
`\\frac{\\sqrt3}{2}`, `\\left( 3, \\frac{\\pi}{2} \\right)`, `10,\\!080`, `\\text{(C)}`) or as GSM8K
does (a worked solution ending `#### 1,234`); completions end as models write them. The traps
(formats the reward of commit 901e8d2 got wrong) are marked "trap". docs/sampler.md ("What the MATH
verifier accepts") gives the old and the new reward's score on this table.
"""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sampler.math_verifier import box_contents, completion_answer, reference_answer, tidy
from services.sampler.rewards import RewardPool, RewardSpec, math_reward

GSM = "Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips altogether.\n#### 72"
GSM_BIG = "The house cost 80,000 + 50,000 = 130,000.\nHe made 200,000 - 130,000 = 70,000.\n#### 70,000"
GSM_NEG = "The temperature fell 5 + 3 = 8 degrees below zero.\n#### -8"
G18 = "He spends 3 x 6 = 18.\n#### 18"

# (label, reference, completion, right)
TABLE = [
    # fractions and \dfrac
    ("frac", r"\frac{14}{3}", r"So $x = \boxed{\frac{14}{3}}$.", True),
    ("frac-slash", r"\frac{14}{3}", r"\boxed{14/3}", True),
    ("frac-mixed", r"\frac{14}{3}", r"\boxed{4\frac{2}{3}}", True),
    ("frac-wrong", r"\frac{14}{3}", r"\boxed{\frac{3}{14}}", False),
    ("dfrac-ref", r"\dfrac{1}{2}", r"The probability is $\boxed{\frac12}$.", True),  # trap: old parsed nothing
    ("dfrac-decimal", r"\dfrac{1}{2}", r"\boxed{0.5}", True),
    ("dfrac-slash", r"\dfrac{1}{2}", r"\boxed{1/2}", True),
    ("dfrac-wrong", r"\dfrac{1}{2}", r"\boxed{\dfrac{1}{3}}", False),
    ("tfrac", r"\tfrac{3}{4}", r"\boxed{\dfrac{3}{4}}", True),
    ("frac-neg", r"-\frac{1}{2}", r"\boxed{-0.5}", True),
    ("frac-sign", r"-\frac{1}{2}", r"\boxed{\frac{1}{2}}", False),
    ("third-short-decimal", r"\frac{1}{3}", r"\boxed{0.333}", False),
    ("third-long-decimal", r"\frac{1}{3}", r"\boxed{0.3333333}", True),  # floats agree to 6 decimals
    ("third-repeating", r"\frac{1}{3}", r"\boxed{0.\overline{3}}", True),
    ("repeating-ref", r"0.\overline{36}", r"\boxed{\frac{4}{11}}", True),
    ("ratio", r"3:4", r"\boxed{\frac{3}{4}}", True),
    # roots
    ("sqrt3-over-2", r"\frac{\sqrt3}{2}", r"so $\sin 60^\circ = \boxed{\frac{\sqrt{3}}{2}}$", True),  # trap
    ("sqrt3-over-2-slash", r"\frac{\sqrt3}{2}", r"\boxed{\sqrt{3}/2}", True),  # trap
    ("sqrt3-over-2-wrong", r"\frac{\sqrt3}{2}", r"\boxed{\frac{\sqrt{2}}{2}}", False),
    ("sqrt3-over-2-rounded", r"\frac{\sqrt3}{2}", r"\boxed{0.866}", False),
    ("sqrt3-over-2-decimal", r"\frac{\sqrt3}{2}", r"\boxed{0.8660254}", True),
    ("root-simplified", r"3\sqrt{3}", r"\boxed{\sqrt{27}}", True),
    ("root-wrong", r"3\sqrt{3}", r"\boxed{3\sqrt{2}}", False),
    ("root-power", r"\sqrt{2}", r"\boxed{2^{1/2}}", True),
    ("cube-root", r"\sqrt[3]{2}", r"\boxed{2^{1/3}}", True),
    # pi
    ("pi", r"2\pi", r"The circumference is $\boxed{2\pi}$.", True),
    ("pi-rounded", r"2\pi", r"\boxed{6.28}", False),
    ("pi-frac", r"\frac{\pi}{4}", r"\boxed{\frac{1}{4}\pi}", True),
    ("pi-wrong", r"\frac{\pi}{4}", r"\boxed{\frac{\pi}{2}}", False),
    # tuples and intervals
    ("polar-tuple", r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{\left(3,\frac{\pi}{2}\right)}", True),
    ("polar-tuple-plain", r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{(3, \pi/2)}", True),
    ("polar-first-element", r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{3}", False),  # trap: old said right
    ("polar-swapped", r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{\left(\frac{\pi}{2}, 3\right)}", False),
    ("point", r"(1,-2)", r"The vertex is $\boxed{(1, -2)}$.", True),
    ("point-swapped", r"(1,-2)", r"\boxed{(-2, 1)}", False),
    ("point-first", r"(1,-2)", r"\boxed{1}", False),
    ("interval-closed", r"[-2,7]", r"\boxed{[-2, 7]}", True),
    ("interval-open-vs-closed", r"[-2,7]", r"\boxed{(-2,7)}", False),
    ("interval-half-open", r"(-\infty, 3]", r"\boxed{(-\infty,3]}", True),
    ("interval-end-open", r"(-\infty, 3]", r"\boxed{(-\infty,3)}", False),
    ("union", r"(-\infty,0)\cup(0,\infty)", r"\boxed{(-\infty, 0) \cup (0, \infty)}", True),
    ("union-wrong", r"(-\infty,0)\cup(0,\infty)", r"\boxed{(-\infty, 0] \cup (0, \infty)}", False),
    ("inequality-as-interval", r"x \ge 2", r"\boxed{[2,\infty)}", True),
    ("inequality-strict", r"x \ge 2", r"\boxed{x > 2}", False),
    # \text{} answers
    ("text-name", r"\text{Evelyn}", r"Evelyn runs fastest, so the answer is $\boxed{\text{Evelyn}}$.", True),
    ("text-name-bare", r"\text{Evelyn}", r"\boxed{Evelyn}", True),
    ("text-name-wrong", r"\text{Evelyn}", r"\boxed{\text{Diana}}", False),
    ("text-name-anagram", r"\text{Evelyn}", r"\boxed{Evelny}", False),
    ("choice", r"\text{(C)}", r"\boxed{C}", True),
    ("choice-wrong", r"\text{(C)}", r"\boxed{\text{(B)}}", False),
    ("text-word", r"\text{odd}", r"\boxed{\text{odd}}", True),
    ("text-word-wrong", r"\text{odd}", r"\boxed{\text{even}}", False),
    ("text-direction-wrong", r"\text{east}", r"\boxed{\text{west}}", False),
    # degrees
    ("degrees", r"90^\circ", r"\boxed{90}", True),
    ("degrees-both", r"30^\circ", r"\boxed{30^{\circ}}", True),
    ("degrees-wrong", r"30^\circ", r"\boxed{60^\circ}", False),
    ("degrees-not-radians", r"90^\circ", r"\boxed{\frac{\pi}{2}}", False),
    # percent
    ("percent", r"10\%", r"\boxed{10\%}", True),
    ("percent-bare", r"10\%", r"\boxed{10}", True),
    ("percent-fraction", r"25\%", r"\boxed{\frac{1}{4}}", True),
    ("percent-wrong", r"10\%", r"\boxed{20\%}", False),
    ("percent-decimal", r"10\%", r"\boxed{0.1}", True),
    ("percent-not-of-bare", r"25", r"\boxed{0.25}", False),
    # units and money
    ("units-cm", r"4\text{ cm}", r"\boxed{4}", True),
    ("units-both", r"4\text{ cm}", r"\boxed{4\text{ cm}}", True),
    ("units-square", r"12\text{ square feet}", r"\boxed{12}", True),
    ("units-wrong", r"4\text{ cm}", r"\boxed{5 \text{ cm}}", False),
    ("units-no-space", r"4\text{ cm}", r"\boxed{4cm}", True),
    ("units-metres", r"5\text{ m}", r"\boxed{5}", True),
    ("units-word", r"12 \text{ square feet}", r"\boxed{12 \text{ ft}^2}", True),
    ("units-word-plain", G18, r"\boxed{18 dollars}", True),
    ("units-word-square", r"12", r"\boxed{12 square feet}", True),
    ("variable-not-a-unit", r"3t", r"\boxed{3}", False),  # math-verify's unit list strips `t`
    ("variable-not-a-unit-sum", r"x^2 + 2d", r"\boxed{x^2+2}", False),
    ("variable-kept", r"x^2 + 2d", r"\boxed{2d + x^2}", True),
    ("money", r"\$18.90", r"\boxed{18.90}", True),
    ("money-both", r"\$18.90", r"\boxed{\$18.9}", True),
    ("money-wrong", r"\$18.90", r"\boxed{\$18.09}", False),
    # thousands separators (MATH's `10,\!080`, GSM8K's `#### 70,000`)
    ("math-thousands", r"10,\!080", r"\boxed{10080}", True),
    ("math-thousands-comma", r"10,\!080", r"\boxed{10,080}", True),
    ("math-thousands-thin-space", r"10,\!080", r"\boxed{10\,080}", True),
    ("math-thousands-space", r"10,\!080", r"\boxed{10 080}", True),
    ("math-thousands-wrong", r"10,\!080", r"\boxed{1008}", False),
    ("math-thousands-braces", r"1000000", r"\boxed{1{,}000{,}000}", True),
    ("money-thousands", r"\$32,\!348", r"\boxed{\$32,348}", True),
    ("money-thousands-wrong", r"\$32,\!348", r"\boxed{32,384}", False),
    ("thousands-spaced", r"11,\! 111,\! 111,\! 100", r"\boxed{11111111100}", True),
    ("gsm8k", GSM, r"She sold 72 clips. \boxed{72}", True),
    ("gsm8k-wrong", GSM, r"She sold 48 clips in April and \boxed{24} in May.", False),
    ("gsm8k-thousands", GSM_BIG, r"\boxed{70000}", True),
    ("gsm8k-thousands-comma", GSM_BIG, r"\boxed{70,000}", True),
    ("gsm8k-thousands-dollar", GSM_BIG, r"He made $\boxed{\$70,000}$.", True),
    ("gsm8k-thousands-wrong", GSM_BIG, r"\boxed{130,000}", False),
    ("gsm8k-thousands-fragment", GSM_BIG, r"\boxed{70}", False),
    ("gsm8k-hash-line", GSM_BIG, "He made 70,000.\n#### 70,000", True),
    ("bare-thousands", r"70,000", r"\boxed{70000}", True),  # an answer column holding the number only
    ("list-not-thousands", r"1, 234", r"\boxed{234, 1}", True),  # with a space: two answers
    ("gsm8k-hash-line-dollar", GSM_BIG, "So he made $70,000.\n#### $70,000.", True),
    ("gsm8k-hash-line-words", GSM_BIG, "#### 70000 dollars", False),  # `#### N` lines hold a number only
    ("markdown-heading", r"3", "#### 3 steps to the answer\nFirst, ...", False),
    ("gsm8k-hash-line-wrong", GSM_BIG, "#### 130,000", False),
    # negative numbers
    ("negative", r"-5", r"\boxed{-5}", True),
    ("negative-sign-lost", r"-5", r"\boxed{5}", False),
    ("gsm8k-negative", GSM_NEG, r"\boxed{-8}", True),
    ("gsm8k-negative-wrong", GSM_NEG, r"\boxed{8}", False),
    # expressions and equations
    ("poly-factored", r"x^2+2x+1", r"\boxed{(x+1)^2}", True),  # trap: old parsed nothing
    ("poly-wrong", r"x^2+2x+1", r"\boxed{x^2+2x}", False),
    ("poly-other-variable", r"x^2+2x+1", r"\boxed{y^2+2y+1}", False),
    ("symbolic-frac", r"\frac{a+b}{2}", r"\boxed{\frac{a}{2}+\frac{b}{2}}", True),
    ("symbolic-frac-wrong", r"\frac{a+b}{2}", r"\boxed{a+b}", False),
    ("line", r"y=2x+3", r"\boxed{y = 3 + 2x}", True),
    ("line-wrong", r"y=2x+3", r"\boxed{y=3x+2}", False),
    ("line-right-side", r"y=2x+3", r"\boxed{2x+3}", True),
    ("assignment", r"5", r"\boxed{x=5}", True),
    ("complex", r"6-5i", r"\boxed{6 - 5i}", True),
    ("complex-conjugate", r"6-5i", r"\boxed{6+5i}", False),
    # sets and several answers
    ("set", r"\{1,2,3\}", r"\boxed{\{3,2,1\}}", True),
    ("set-missing", r"\{1,2,3\}", r"\boxed{\{1,2\}}", False),
    ("roots-list", r"-2, 1", r"The roots are $\boxed{1, -2}$.", True),
    ("roots-one-of-two", r"-2, 1", r"\boxed{1}", False),
    ("plus-minus", r"\pm 2", r"\boxed{2, -2}", True),
    ("plus-minus-one", r"\pm 2", r"\boxed{2}", False),
    ("several-boxes-one-answer", r"-2, 1", r"\boxed{1}, \boxed{-2}", False),  # the last box only
    # matrices and vectors
    ("vector", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\boxed{\begin{pmatrix}1\\2\end{pmatrix}}", True),
    ("vector-swapped", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\boxed{\begin{pmatrix}2\\1\end{pmatrix}}", False),
    ("matrix-bmatrix", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
     r"\boxed{\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}}", True),
    ("matrix-fractions", r"\begin{pmatrix} -1/3 \\ 2/3 \\ 5/3 \end{pmatrix}",
     r"\boxed{\begin{pmatrix} -\frac{1}{3} \\ \frac{2}{3} \\ \frac{5}{3} \end{pmatrix}}", True),
    ("matrix-transposed", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
     r"\boxed{\begin{pmatrix} 1 & 3 \\ 2 & 4 \end{pmatrix}}", False),
    # several, no, or broken \boxed{}
    ("last-box-counts", r"72", r"First guess \boxed{71}. Checking again: \boxed{72}", True),
    ("last-box-wrong", r"72", r"\boxed{72} -- no, recomputing, \boxed{71}", False),
    ("box-then-hash", r"72", "#### 72\nActually \\boxed{73}", False),
    ("no-box-stray-number", r"72", r"48 + 24 = 72, so she sold 72 clips.", False),  # trap: old said right
    ("no-box-final-answer-words", r"72", r"**Final answer:** 72", False),
    ("no-box-dollars", r"\frac{1}{2}", r"The answer is $\frac{1}{2}$.", False),
    ("box-unclosed", r"72", r"\boxed{72} wait, so it is \boxed{7", False),
    ("box-empty", r"72", r"Put the answer in \boxed{}.", False),
    ("box-spaced-fbox", r"72", r"\boxed {72} (or \fbox{72})", True),
    ("box-nested", r"72", r"\boxed{\boxed{72}}", True),
    ("box-full-stop", r"72", r"\boxed{72.}", True),
    ("box-textbf", r"72", r"\boxed{\textbf{72}}", True),
    ("reference-is-solution", r"So $x+y = \boxed{12}$.", r"\boxed{12}", True),
    ("reference-in-dollars", r"$\frac{1}{2}$", r"\boxed{\frac{1}{2}}", True),
    ("unparsed-same-string", r"\frac{1}{2}\%", r"\boxed{\frac{1}{2}\%}", True),
    # Written after a first version of the verifier was done, and run once against it unchanged
    # (49 of 50 verdicts right; the miss, a boxed inequality for an interval reference, is
    # math-verify's rule and kept as a wrong answer).
    ("fresh-root", r"11\sqrt2", r"\boxed{11\sqrt{2}}", True),
    ("fresh-union3", r"(-\infty,-4)\cup(-4,6)\cup(6,\infty)",
     r"\boxed{(-\infty,-4) \cup (-4,6) \cup (6,\infty)}", True),
    ("fresh-repeating", r"\frac{5}{3}", r"\boxed{1.\overline{6}}", True),
    ("fresh-tuple-decimals", r"\left(\frac{1}{2}, -\frac{3}{4}\right)", r"\boxed{(0.5, -0.75)}", True),
    ("fresh-root-unsimplified", r"2\sqrt{5}", r"\boxed{\sqrt{20}}", True),
    ("fresh-choice-parens", r"\text{E}", r"\boxed{\text{(E)}}", True),
    ("fresh-decimal", r"\frac{9}{2}", r"\boxed{4.5}", True),
    ("fresh-pi-units", r"100\pi", r"\boxed{100 \pi \text{ cm}^2}", True),
    ("fresh-gsm8k-units", G18, r"\boxed{18 \text{ dollars}}", True),
    ("fresh-gsm8k-cents", "#### 5", r"\boxed{\$5.00}", True),
    ("fresh-gsm8k-comma", "#### 1080", r"\boxed{1,080}", True),
    ("fresh-rationalised", r"-\frac{\sqrt{3}}{3}", r"\boxed{-\frac{1}{\sqrt{3}}}", True),
    ("fresh-frac-root", r"\frac{3\sqrt{3}}{2}", r"\boxed{\frac{3}{2}\sqrt{3}}", True),
    ("fresh-cube", r"x^3-3x^2+3x-1", r"\boxed{(x-1)^3}", True),
    ("fresh-line-decimal", r"y = -\frac{1}{2}x + 4", r"\boxed{y=-0.5x+4}", True),
    ("fresh-decimal-ref", r"1.5", r"\boxed{\frac32}", True),
    ("fresh-text-case", r"\text{Sunday}", r"\boxed{\text{sunday}}", True),
    ("fresh-roots-as-equations", r"-1, 3", r"\boxed{x=-1, x=3}", True),
    ("fresh-units-abbrev", r"8\text{ inches}", r"\boxed{8 \text{ in}}", True),
    ("fresh-infinity", r"\infty", r"\boxed{\infty}", True),
    ("fresh-list", r"1,2,3,4", r"\boxed{1, 2, 3, 4}", True),
    ("fresh-inequality-for-interval", r"(2,\infty)", r"\boxed{x>2}", False),
    ("fresh-inverse-root", r"\dfrac{\sqrt{2}}{2}", r"\boxed{\frac{1}{\sqrt{2}}}", True),
    ("fresh-power", r"2^{10}", r"\boxed{1024}", True),
    ("fresh-money-words", r"\$1.25", r"\boxed{1.25 \text{ dollars}}", True),
    ("fresh-choice-text", r"\text{(A)}", r"\boxed{\text{A}}", True),
    ("fresh-display-math", r"-3", r"\[\boxed{-3.}\]", True),
    ("fresh-zero-decimal", r"0", r"\boxed{0.0}", True),
    ("fresh-frac-inverted", r"\frac{5}{3}", r"\boxed{\frac{3}{5}}", False),
    ("fresh-root-swapped", r"2\sqrt{5}", r"\boxed{5\sqrt{2}}", False),
    ("fresh-gsm8k-decimal-wrong", G18, r"\boxed{18.5}", False),
    ("fresh-point-swapped", r"(0,5)", r"\boxed{(5,0)}", False),
    ("fresh-root-rounded", r"6\sqrt{2}", r"\boxed{8.485}", False),
    ("fresh-text-wrong", r"\text{Sunday}", r"\boxed{\text{Monday}}", False),
    ("fresh-one-root", r"-1, 3", r"\boxed{-1}", False),
    ("fresh-cube-wrong", r"x^3-3x^2+3x-1", r"\boxed{(x+1)^3}", False),
    ("fresh-interval-closed-end", r"(2,\infty)", r"\boxed{[2,\infty)}", False),
    ("fresh-gsm8k-digit-lost", "#### 1080", r"\boxed{108}", False),
    ("fresh-pi-rounded", r"100\pi", r"\boxed{314.16}", False),
    ("fresh-no-box", r"\frac{9}{2}", r"The answer is 4.5", False),
    ("fresh-unevaluated-sum", r"4", r"\boxed{2+2}", True),
    ("fresh-unreduced", r"\frac{1}{2}", r"\boxed{\frac{2}{4}}", True),
    ("fresh-number-word", r"5", r"\boxed{\text{five}}", False),
    ("fresh-percent-of-bare", r"12", r"\boxed{12\%}", True),
    ("fresh-units-after-box", r"\sqrt{13}", r"\boxed{\sqrt{13}}\text{ units}", True),
    ("fresh-empty-last-box", r"7", r"\boxed{7}\boxed{}", False),
    ("fresh-yes-no", r"\text{No}", r"\boxed{\text{no}}", True),
    ("fresh-yes-no-wrong", r"\text{No}", r"\boxed{\text{yes}}", False),
    ("fresh-other-unit", r"3\text{ hours}", r"\boxed{180 \text{ minutes}}", False),
    ("fresh-half-open", r"[1,4)", r"\boxed{[1, 4)}", True),
]


def test_table_is_large_and_balanced():
    assert len(TABLE) >= 60
    assert len({label for label, *_ in TABLE}) == len(TABLE)  # labels name the cases uniquely
    wrong = sum(not right for *_, right in TABLE)
    assert 0.3 < wrong / len(TABLE) < 0.7  # a reward that always says 0 (or 1) fails about half


@pytest.mark.parametrize("reference,completion,right", [c[1:] for c in TABLE], ids=[c[0] for c in TABLE])
def test_verdict(reference, completion, right):
    assert math_reward(completion, reference) == (1.0 if right else 0.0)


NUMBER_FORMATS = {  # how a model may box the integer n
    "plain": "{}".format, "commas": "{:,}".format, "dollars": "\\${:,}".format, "cents": "{:,}.00".format,
    "thin-spaces": lambda n: f"{n:_}".replace("_", "\\,"), "spaces": lambda n: f"{n:_}".replace("_", " "),
}


@settings(max_examples=60, deadline=None)
@given(st.integers(-10**9, 10**9), st.sampled_from(sorted(NUMBER_FORMATS)), st.sampled_from(["{:,}", "{}"]))
def test_gsm8k_numbers_in_every_format(n, pred_format, ref_format):
    """Any integer, as GSM8K writes it after `####` and as a model may box it; the neighbouring
    integer in the same format is wrong."""
    ref = "work...\n#### " + ref_format.format(n)
    box = NUMBER_FORMATS[pred_format]
    assert math_reward("\\boxed{" + box(n) + "}", ref) == 1.0
    assert math_reward("\\boxed{" + box(n + 1) + "}", ref) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.fractions(min_value=-50, max_value=50, max_denominator=60), st.integers(2, 9),
       st.sampled_from([r"\frac", r"\dfrac", r"\tfrac"]))
def test_fractions_unreduced_or_not(f, k, cmd):
    """A reference fraction as MATH writes it (`-\\frac{3}{4}`, reduced) against the same value
    unreduced (`\\dfrac{6}{8}`), and against a value 1/(q+1) away."""
    latex = lambda num, den: ("-" if num < 0 else "") + f"{cmd}{{{abs(num)}}}{{{den}}}"  # noqa: E731
    ref = str(f.numerator) if f.denominator == 1 else latex(f.numerator, f.denominator)
    assert math_reward("\\boxed{" + latex(f.numerator * k, f.denominator * k) + "}", ref) == 1.0
    other = f + Fraction(1, f.denominator + 1)
    assert math_reward("\\boxed{" + latex(other.numerator, other.denominator) + "}", ref) == 0.0


def test_answer_extraction():
    assert box_contents(r"a \boxed{1} b \fbox{x^{2}} c") == ["1", "x^{2}"]
    assert box_contents(r"\boxed{\frac{1}{2}} then \boxed{3") == [r"\frac{1}{2}", None]
    assert completion_answer(r"\boxed{(3, \frac{\pi}{2})}") == r"(3, \frac{\pi}{2})"  # the whole tuple
    assert completion_answer("no box, 3 numbers 4 5") is None
    assert completion_answer("#### $1,234.\nmore text") == "1,234"
    assert completion_answer("#### 3 steps\n1. ...") is None  # a markdown heading, not an answer
    assert reference_answer(GSM_BIG) == "70,000"
    assert reference_answer(r"\left( 3, \frac{\pi}{2} \right)") == r"\left( 3, \frac{\pi}{2} \right)"
    assert tidy(r"10\,000") == "10000" and tidy("1 234.") == "1234"
    assert tidy(r"1.2\overline{45}") == r"\frac{137}{110}"
    assert tidy(r"100\pi\text{ cm}^2.") == r"100\pi" and tidy("12 square feet") == "12"
    assert tidy(r"\text{Evelyn}") == r"\text{Evelyn}" and tidy(r"3+2\mathrm{i}") == r"3+2\mathrm{i}"


def test_documented_limits():
    """Verdicts docs/sampler.md names as limits, pinned so a change to them is seen."""
    assert math_reward(r"\boxed{3\text{ minutes}}", r"3\text{ hours}") == 1.0  # units dropped, not compared
    assert math_reward(r"\boxed{1011}", r"1011_2") == 1.0  # a base subscript is dropped
    assert math_reward(r"\boxed{11}", r"1011_2") == 0.0  # ... not converted


@pytest.mark.process
def test_pool_scores_math_in_worker_processes():
    """The same verdicts through the reward pool (spawned workers, SIGALRM), and an answer whose
    evaluation never ends (10^(10^10)) times out, scores 0 and is counted, the pool unharmed."""
    picked = [c for c in TABLE if c[0] in ("polar-first-element", "sqrt3-over-2", "gsm8k-thousands-comma",
                                           "no-box-stray-number", "roots-list")]
    # Verdicts with a generous timeout (a loaded CI box must not turn a slow parse into a 0) ...
    pool = RewardPool(RewardSpec("math"), timeout_s=30.0, workers=1)
    try:
        res = pool.score([(completion, reference, {}) for _, reference, completion, _ in picked])
        assert res.scores.tolist() == [1.0 if right else 0.0 for *_, right in picked] and not res.failures
    finally:
        pool.close()
    # ... and the never-ending answer against a short one, then the same pool scores again.
    pool = RewardPool(RewardSpec("math"), timeout_s=1.0, workers=1)
    try:
        res = pool.score([(r"\boxed{10^{10^{10}}}", "5", {})])
        assert res.scores.tolist() == [0.0] and res.failures == {"timeout": 1}
        res = pool.score([(r"\boxed{5}", "5", {})])
        assert res.scores.tolist() == [1.0] and not res.failures
    finally:
        pool.close()
