//! Automatic assignment (birthright access): a policy's rule over a person's attributes, in
//! the Common Expression Language (the `cel` crate), as Kubernetes and cloud IAM conditions
//! are written: `department == "Sales" && kind == "member"`, `"Finance" in groups`,
//! `job_title.startsWith("Account")`, `org == "Northwind Partners"`.

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
}

fn invalid(why: impl Into<String>) -> DomainError {
    DomainError::invalid("auto_rule", why)
}

impl Rule {
    /// Parse a rule; a rule that does not parse, names something a person does not have, or
    /// does not answer true or false is refused with the reason.
    pub fn parse(source: &str) -> DomainResult<Rule> {
        let source = source.trim();
        if source.is_empty() {
            return Err(invalid("write a rule, such as department == \"Sales\""));
        }
        if source.chars().count() > MAX_RULE {
            return Err(invalid(format!("at most {MAX_RULE} characters")));
        }
        let program = Program::compile(source).map_err(|e| invalid(format!("the rule does not parse: {e}")))?;
        let rule = Rule { program };
        // Tried on someone with every attribute empty: what any person lacks is refused now,
        // not at the first pass. (An error only some people's values cause, such as an
        // index past the end of their groups, is theirs: the rule does not match them.)
        match rule.evaluate(&PersonFacts::default()) {
            Ok(_) => Ok(rule),
            Err(Refusal::Rule(why)) => Err(invalid(why)),
            Err(Refusal::Person) => Ok(rule),
        }
    }

    /// Whether the rule matches this person (a person for whom it cannot be evaluated does not
    /// match).
    pub fn matches(&self, person: &PersonFacts) -> bool {
        self.evaluate(person).unwrap_or(false)
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
        match self.program.execute(&context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(Refusal::Rule(format!("the rule must answer true or false, not {other:?}"))),
            Err(ExecutionError::UndeclaredReference(name)) => Err(Refusal::Rule(format!(
                "a person has no “{name}”: use email, department, job_title, kind, org or groups"
            ))),
            Err(ExecutionError::FunctionError { function, message }) if message.contains("Undeclared") => {
                Err(Refusal::Rule(format!("unknown function {function}")))
            }
            Err(_) => Err(Refusal::Person),
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
        assert!(sales.matches(&person("Sales", &[])));
        assert!(!sales.matches(&person("Engineering", &[])));
        let finance = Rule::parse(r#""Finance" in groups"#).unwrap();
        assert!(finance.matches(&person("", &["Finance"])));
        assert!(!finance.matches(&person("Finance", &["Engineering"])));
        let title = Rule::parse(r#"job_title.startsWith("Software")"#).unwrap();
        assert!(title.matches(&person("", &[])));
        // An index past someone's groups: not a match for them, not a bad rule.
        let first = Rule::parse(r#"groups[0] == "Finance""#).unwrap();
        assert!(!first.matches(&person("", &[])));
        assert!(first.matches(&person("", &["Finance"])));
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
    }
}
