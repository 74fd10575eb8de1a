//! Automatic assignment (birthright access): a policy's rule over a person's attributes, in
//! the Common Expression Language (the `cel` crate), as Kubernetes and cloud IAM conditions
//! are written: `department == "Sales" && kind == "member"`, `"Finance" in groups`,
//! `job_title.startsWith("Account")`, `org == "Northwind Partners"`.

use cel::common::ast::{Expr, IdedExpr};
use cel::{Context, ExecutionError, Program, Value};

use super::error::{DomainError, DomainResult};

/// The longest rule accepted, in characters.
pub const MAX_RULE: usize = 2000;

/// What a rule reads about a person: `email`, `department`, `job_title`, `kind` (`member`
/// or `guest`), `org` (their connected organization's name, empty for members) and `groups`
/// (the names of the groups they are in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersonFacts {
    pub email: String,
    pub department: String,
    pub job_title: String,
    pub kind: String,
    pub org: String,
    pub groups: Vec<String>,
}

/// A rule, parsed and checked.
#[derive(Debug)]
pub struct Rule {
    program: Program,
    source: String,
}

/// The names a rule may read.
const VARIABLES: [&str; 6] = ["email", "department", "job_title", "kind", "org", "groups"];

fn invalid(why: impl Into<String>) -> DomainError {
    DomainError::invalid("auto_rule", why)
}

/// Every name the rule reads is a person's attribute (or a comprehension's own variable), and
/// no comprehension (`exists`, `all`, `map`, `filter`) sits inside another: a rule costs at
/// most its length times a person's groups to evaluate. Checked on the whole expression,
/// so a name in a branch the empty sample never reaches is refused too.
fn check(e: &IdedExpr, bound: &mut Vec<String>, inside: bool) -> Result<(), String> {
    match &e.expr {
        Expr::Ident(name) if name.starts_with('@') || bound.contains(name) || VARIABLES.contains(&name.as_str()) => {
            Ok(())
        }
        Expr::Ident(name) => {
            Err(format!("a person has no “{name}”: use email, department, job_title, kind, org or groups"))
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                check(target, bound, inside)?;
            }
            call.args.iter().try_for_each(|a| check(a, bound, inside))
        }
        Expr::Comprehension(_) if inside => {
            Err("one exists, all, map or filter at a time, not one inside another".to_owned())
        }
        Expr::Comprehension(c) => {
            check(&c.iter_range, bound, inside)?;
            let before = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            let body = [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result];
            let checked = body.into_iter().try_for_each(|part| check(part, bound, true));
            bound.truncate(before);
            checked
        }
        Expr::List(list) => list.elements.iter().try_for_each(|x| check(x, bound, inside)),
        Expr::Select(select) => check(&select.operand, bound, inside),
        Expr::Map(_) | Expr::Struct(_) => {
            Err("a rule compares a person's attributes: no maps or structures".to_owned())
        }
        Expr::Literal(_) | Expr::Unspecified => Ok(()),
    }
}

impl Rule {
    /// Parse a rule; a rule that does not parse, reads anything but a person's attributes,
    /// nests comprehensions or does not answer true or false is refused with the reason.
    pub fn parse(source: &str) -> DomainResult<Rule> {
        let source = source.trim();
        if source.is_empty() {
            return Err(invalid("write a rule, such as department == \"Sales\""));
        }
        if source.chars().count() > MAX_RULE {
            return Err(invalid(format!("at most {MAX_RULE} characters")));
        }
        let program = Program::compile(source).map_err(|e| invalid(format!("the rule does not parse: {e}")))?;
        check(program.expression(), &mut Vec::new(), false).map_err(invalid)?;
        let rule = Rule { program, source: source.to_owned() };
        // Tried on someone with every attribute empty, the answer must be true or false. (An
        // error only some people's values cause, such as an index past the end of their
        // groups, is theirs: the rule neither gives nor takes for them.)
        match rule.evaluate(&PersonFacts::default()) {
            Ok(_) | Err(Refusal::Person) => Ok(rule),
            Err(Refusal::Rule(why)) => Err(invalid(why)),
        }
    }

    /// The rule as written (trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the rule matches this person; `None` when it cannot be evaluated for them
    /// (then it neither gives nor takes the package).
    pub fn matches(&self, person: &PersonFacts) -> Option<bool> {
        self.evaluate(person).ok()
    }

    fn evaluate(&self, p: &PersonFacts) -> Result<bool, Refusal> {
        let mut context = Context::default();
        for (name, value) in [
            ("email", &p.email),
            ("department", &p.department),
            ("job_title", &p.job_title),
            ("kind", &p.kind),
            ("org", &p.org),
        ] {
            context.add_variable(name, value.clone()).map_err(|_| Refusal::Person)?;
        }
        context.add_variable("groups", p.groups.clone()).map_err(|_| Refusal::Person)?;
        // The interpreter is someone else's code: a panic in it is this person's "unknown",
        // never a worker's or a sign-in's end.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.program.execute(&context)));
        match run {
            Ok(Ok(Value::Bool(b))) => Ok(b),
            Ok(Ok(other)) => Err(Refusal::Rule(format!("the rule must answer true or false, not {other:?}"))),
            Ok(Err(ExecutionError::UndeclaredReference(name))) => {
                Err(Refusal::Rule(format!("“{name}” is not something a rule can use here")))
            }
            Ok(Err(_)) | Err(_) => Err(Refusal::Person),
        }
    }
}

/// Why a rule gave no answer: the rule's fault (refused when it is saved), or this person's.
enum Refusal {
    Rule(String),
    Person,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(department: &str, groups: &[&str]) -> PersonFacts {
        PersonFacts {
            email: "maya@x.example".into(),
            department: department.into(),
            job_title: "Software Engineer".into(),
            kind: "member".into(),
            org: String::new(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn rules_match_people_by_their_attributes() {
        let sales = Rule::parse(r#"department == "Sales" && kind == "member""#).unwrap();
        assert_eq!(sales.matches(&person("Sales", &[])), Some(true));
        assert_eq!(sales.matches(&person("Engineering", &[])), Some(false));
        let finance = Rule::parse(r#""Finance" in groups"#).unwrap();
        assert_eq!(finance.matches(&person("", &["Finance"])), Some(true));
        assert_eq!(finance.matches(&person("Finance", &["Engineering"])), Some(false));
        let title = Rule::parse(r#"job_title.startsWith("Software")"#).unwrap();
        assert_eq!(title.matches(&person("", &[])), Some(true));
        let any = Rule::parse(r#"groups.exists(g, g.startsWith("Fin"))"#).unwrap();
        assert_eq!(any.matches(&person("", &["Finance"])), Some(true));
        // An index past someone's groups: unknown for them (neither given nor taken), not a
        // bad rule.
        let first = Rule::parse(r#"groups[0] == "Finance""#).unwrap();
        assert_eq!(first.matches(&person("", &[])), None);
        assert_eq!(first.matches(&person("", &["Finance"])), Some(true));
    }

    #[test]
    fn a_bad_rule_is_refused_with_its_reason() {
        let why = |rule: &str| match Rule::parse(rule) {
            Err(DomainError::Invalid { message, .. }) => message,
            other => panic!("{rule}: {other:?}"),
        };
        assert!(why("department ==").contains("does not parse"), "{}", why("department =="));
        assert!(why("departmnet == \"Sales\"").contains("departmnet"), "{}", why("departmnet == \"Sales\""));
        assert!(why("department").contains("true or false"), "{}", why("department"));
        assert!(why("  ").contains("write a rule"));
        // A misspelt name the empty sample never reaches (the first half is false for it).
        let hidden = r#"kind == "guest" && depatment == "X""#;
        assert!(why(hidden).contains("depatment"), "{}", why(hidden));
        let nested = r#"groups.exists(g, groups.all(h, h == g))"#;
        assert!(why(nested).contains("not one inside another"), "{}", why(nested));
    }
}
