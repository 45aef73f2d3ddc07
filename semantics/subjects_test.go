package semantics

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestSubjectTableMatchesDocs holds docs/architecture.md's subject table and
// subjects.go to being twins: every string constant of subjects.go has a row, every
// name a row gives is declared in subjects.go, every constant matches a subject form
// of its row, every form is matched by a constant of its row, and a row with one
// function shows what that function returns.
func TestSubjectTableMatchesDocs(t *testing.T) {
	consts, funcs := declaredSubjects(t, "subjects.go")
	rows := docSubjectRows(t, "../docs/architecture.md")
	checkSubjectTable(t, consts, funcs, rows)
}

// subjectExamples are what the functions of subjects.go return for the table's
// examples.
var subjectExamples = map[string]string{
	"TopicAPISubject":     TopicAPISubject(APITopicCreate, "orders.eu"),
	"GroupSubject":        GroupSubject(GroupCommit, "billing"),
	"TxnSubject":          TxnSubject(TxnEnd, "etl-1"),
	"WriterSubject":       WriterSubject("orders.eu", 3),
	"WriterDirectSubject": WriterDirectSubject("orders.eu", 3, "n1"),
	"LSOSubject":          LSOSubject("orders.eu", 3),
	"StreamSubject":       StreamSubject("orders.eu", 3),
	"BatchSubject":        BatchSubject("orders.eu", 3),
	"CheckpointSubject":   CheckpointSubject("orders.eu", 3),
	"MarkerSubject":       MarkerSubject("orders.eu", 3),
	"KeySubject":          KeySubject("orders.eu", 3, []byte("alice")),
	"AuthzSubject":        AuthzSubject(OpProduce, "orders.eu"),
	"HandOffSubject":      HandOffSubject("n1"),
	"StableSubject":       StableSubject("n1"),
	"BridgeStatusSubject": BridgeStatusSubject("audit"),
	"InboxPrefix":         InboxPrefix("u", "alice"),
	"KVStream":            KVStream(TopicsBucket),
	"KVDirectGetSubject":  KVDirectGetSubject(TopicsBucket, TopicKey("orders.eu")),
	"KVKeySubject":        KVKeySubject(OffsetsBucket, OffsetKey("billing", "orders.eu", 0)),
}

// notNames are functions of subjects.go that build or take apart subjects without
// naming one, so the table does not list them.
var notNames = []string{"Subject", "CutSubject", "SplitTopicAPISubject", "SplitGroupSubject", "SplitTxnSubject", "SplitLSOSubject"}

type subjectRow struct {
	line    int
	forms   []string // brace groups expanded
	names   []string
	example string
}

func checkSubjectTable(t *testing.T, consts map[string]string, funcs map[string]bool, rows []subjectRow) {
	t.Helper()
	inTable := map[string]bool{}
	for _, r := range rows {
		var rowConsts, rowFuncs []string
		for _, n := range r.names {
			inTable[n] = true
			switch {
			case consts[n] != "":
				rowConsts = append(rowConsts, n)
			case funcs[n]:
				rowFuncs = append(rowFuncs, n)
			default:
				t.Errorf("docs line %d names %s, which subjects.go does not declare", r.line, n)
			}
		}
		for _, c := range rowConsts {
			if !slices.ContainsFunc(r.forms, func(f string) bool { return formHasPrefix(f, c, consts[c]) }) {
				t.Errorf("docs line %d: %s is %q in subjects.go, which matches none of the row's subjects %q", r.line, c, consts[c], r.forms)
			}
		}
		if len(rowConsts) > 0 {
			for _, f := range r.forms {
				if !formCovered(f, rowConsts, consts) {
					t.Errorf("docs line %d: subject %q matches no constant of the row %q", r.line, f, rowConsts)
				}
			}
		}
		if len(rowFuncs) == 1 && r.example != "" {
			got, ok := subjectExamples[rowFuncs[0]]
			switch {
			case !ok:
				t.Errorf("docs line %d: add %s's example to subjectExamples", r.line, rowFuncs[0])
			case got != r.example:
				t.Errorf("docs line %d: example %q, but %s returns %q", r.line, r.example, rowFuncs[0], got)
			}
		}
	}
	for n, v := range consts {
		if !inTable[n] {
			t.Errorf("subjects.go declares %s = %q, which docs/architecture.md's subject table does not list", n, v)
		}
	}
	for n := range funcs {
		if ast.IsExported(n) && !inTable[n] && !slices.Contains(notNames, n) {
			t.Errorf("subjects.go declares %s, which docs/architecture.md's subject table does not list", n)
		}
	}
}

// formHasPrefix reports whether the documented subject form starts with value, the
// value of constant name: exactly, or followed by a placeholder (<…>) or the
// wildcard ".>"; a prefix (a name ending in Prefix or Token) may be followed by
// any further tokens.
func formHasPrefix(form, name, value string) bool {
	rest, ok := strings.CutPrefix(form, value)
	return ok && (exactRest(rest) || isPrefix(name) && strings.HasPrefix(rest, "."))
}

// formCovered reports whether a constant of the row (names) matches form: one
// whose value is followed by nothing, a placeholder or ".>"; failing that, a prefix
// whose members the row does not list one by one.
func formCovered(form string, names []string, consts map[string]string) bool {
	for _, n := range names {
		if rest, ok := strings.CutPrefix(form, consts[n]); ok && exactRest(rest) {
			return true
		}
	}
	for _, p := range names {
		if !formHasPrefix(form, p, consts[p]) {
			continue
		}
		listed := slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(consts[n], consts[p]+".") })
		if !listed {
			return true
		}
	}
	return false
}

func exactRest(rest string) bool {
	return rest == "" || rest == ".>" || strings.HasPrefix(rest, "<") || strings.HasPrefix(rest, ".<")
}

func isPrefix(name string) bool {
	return strings.HasSuffix(name, "Prefix") || strings.HasSuffix(name, "Token")
}

// declaredSubjects returns the string constants of file with their values, and
// its functions.
func declaredSubjects(t *testing.T, file string) (consts map[string]string, funcs map[string]bool) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	exprs := map[string]ast.Expr{}
	funcs = map[string]bool{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				funcs[d.Name.Name] = true
			}
		case *ast.GenDecl:
			if d.Tok != token.CONST {
				continue
			}
			for _, s := range d.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					exprs[n.Name] = vs.Values[i]
				}
			}
		}
	}
	var eval func(e ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.Ident:
			if x, ok := exprs[e.Name]; ok {
				return eval(x)
			}
		case *ast.BinaryExpr:
			l, lok := eval(e.X)
			r, rok := eval(e.Y)
			return l + r, lok && rok && e.Op == token.ADD
		case *ast.ParenExpr:
			return eval(e.X)
		}
		return "", false
	}
	consts = map[string]string{}
	for n, e := range exprs {
		if v, ok := eval(e); ok {
			consts[n] = v
		}
	}
	if len(consts) == 0 {
		t.Fatalf("%s declares no string constants", file)
	}
	return consts, funcs
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// docSubjectRows reads the table under "### Subjects" in the document at path.
func docSubjectRows(t *testing.T, path string) []subjectRow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := slices.Index(lines, "### Subjects")
	if start < 0 {
		t.Fatalf("%s has no \"### Subjects\" section", path)
	}
	var rows []subjectRow
	header := 0
	for i := start + 1; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "|") {
			if header > 0 {
				break
			}
			continue
		}
		if header++; header <= 2 { // the header and the |---| line
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		if len(cells) != 4 {
			t.Fatalf("%s line %d: want 4 cells (what, subject, name, example), got %d", path, i+1, len(cells))
		}
		r := subjectRow{line: i + 1}
		for _, m := range codeSpan.FindAllStringSubmatch(cells[1], -1) {
			r.forms = append(r.forms, expandBraces(m[1])...)
		}
		for _, m := range codeSpan.FindAllStringSubmatch(cells[2], -1) {
			r.names = append(r.names, m[1])
		}
		if m := codeSpan.FindStringSubmatch(cells[3]); m != nil {
			r.example = m[1]
		}
		if len(r.forms) == 0 || len(r.names) == 0 {
			t.Errorf("%s line %d: a row needs a subject and a name", path, i+1)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: the Subjects section has no table", path)
	}
	return rows
}

// expandBraces expands the brace groups of a form: "a.{b,c}.d" is "a.b.d", "a.c.d".
func expandBraces(form string) []string {
	i := strings.Index(form, "{")
	j := strings.Index(form, "}")
	if i < 0 || j < i {
		return []string{form}
	}
	var out []string
	for _, alt := range strings.Split(form[i+1:j], ",") {
		out = append(out, expandBraces(form[:i]+alt+form[j+1:])...)
	}
	return out
}

// streamMetadataKeys are keys of qxd's stream metadata: they start with "qxd." but
// are not subjects.
var streamMetadataKeys = []string{"qxd.log_start", "qxd.topic", "qxd.topic_id", "qxd.partition"}

// TestSubjectsOnlyInSubjectsFile keeps subjects.go the one place that spells
// qxd's, JetStream's and KV's subjects: no other non-test Go file of the module has
// a string literal starting with one of their prefixes.
func TestSubjectsOnlyInSubjectsFile(t *testing.T) {
	prefixes := []string{"qxd.", "$JS.", "$KV.", "_INBOX"}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != ".." && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || path == filepath.Join("..", "semantics", "subjects.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil || slices.Contains(streamMetadataKeys, s) {
				return true
			}
			for _, p := range prefixes {
				if strings.HasPrefix(s, p) {
					t.Errorf("%s: subject literal %q: name it in semantics/subjects.go (and docs/architecture.md's subject table)", fset.Position(lit.Pos()), s)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
