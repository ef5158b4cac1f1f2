//! The subset of FHIR R4 `Observation` that GlucoChain records carry.
//!
//! Elements are those the HL7 CGM implementation guide and lab results use;
//! anything else is refused (strict parsing), so what is signed is exactly
//! what is stored and shown. Glucose codes (LOINC): 99504-3 interstitial
//! glucose by CGM in mg/dL, 105272-9 the same in mmol/L, 2339-0 blood glucose
//! (fingerstick or venous) in mg/dL, 4548-4 HbA1c in %.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// LOINC system URI.
pub const LOINC: &str = "http://loinc.org";
/// UCUM system URI.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// LOINC: glucose in interstitial fluid by CGM, mg/dL.
pub const LOINC_CGM_MG_DL: &str = "99504-3";
/// LOINC: glucose in interstitial fluid by CGM, mmol/L.
pub const LOINC_CGM_MMOL_L: &str = "105272-9";
/// LOINC: glucose in blood, mg/dL.
pub const LOINC_BLOOD_GLUCOSE: &str = "2339-0";
/// LOINC: hemoglobin A1c / hemoglobin total in blood, %.
pub const LOINC_HBA1C: &str = "4548-4";

/// A FHIR R4 Observation (subset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Observation {
    /// Always `"Observation"`.
    pub resource_type: String,
    /// Logical id chosen by the submitter (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Business identifiers, e.g. the device's reading id; resubmitting an
    /// observation with the same identifier is idempotent (FHIR conditional create).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    /// `final`, `preliminary`, `amended`, `corrected`, `entered-in-error`, ...
    pub status: String,
    /// E.g. `laboratory`, `vital-signs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<CodeableConcept>,
    /// What was observed (LOINC).
    pub code: CodeableConcept,
    /// The patient (`Patient/<secure id>`); must match the transaction's patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Reference>,
    /// When it was observed.
    pub effective_date_time: Timestamp,
    /// When it was made available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<Timestamp>,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity>,
    /// The measuring device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Reference>,
    /// Free-text comments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub note: Vec<Annotation>,
}

/// FHIR Identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// Namespace URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The value.
    pub value: String,
}

/// FHIR CodeableConcept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeableConcept {
    /// Codes from terminologies.
    #[serde(default)]
    pub coding: Vec<Coding>,
    /// Plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// FHIR Coding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coding {
    /// Terminology URI (e.g. `http://loinc.org`).
    pub system: String,
    /// The code.
    pub code: String,
    /// Display text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// FHIR Reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// Literal reference, e.g. `Patient/p...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Display text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// FHIR Quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    /// Numeric value.
    pub value: f64,
    /// Human unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Unit system (UCUM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Unit code, e.g. `mg/dL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// FHIR Annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Annotation {
    /// The text.
    pub text: String,
}

const STATUSES: &[&str] =
    &["registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"];

impl Observation {
    /// The first LOINC code, if any.
    pub fn loinc_code(&self) -> Option<&str> {
        self.code.coding.iter().find(|c| c.system == LOINC).map(|c| c.code.as_str())
    }

    /// Glucose in mg/dL if this is a glucose observation with a value
    /// (mmol/L converted with 18.0182 mg/dL per mmol/L).
    pub fn glucose_mg_dl(&self) -> Option<f64> {
        let v = self.value_quantity.as_ref()?.value;
        match self.loinc_code()? {
            LOINC_CGM_MG_DL | LOINC_BLOOD_GLUCOSE => Some(v),
            LOINC_CGM_MMOL_L => Some(v * 18.0182),
            _ => None,
        }
    }

    /// Checks the rules beyond the JSON shape; `patient` is the transaction's
    /// patient, whom `subject` must name when given.
    pub fn validate(&self, patient: &str) -> Result<(), String> {
        if self.resource_type != "Observation" {
            return Err(format!("resourceType must be \"Observation\", got {:?}", self.resource_type));
        }
        if !STATUSES.contains(&self.status.as_str()) {
            return Err(format!("status {:?} is not a FHIR observation status", self.status));
        }
        if self.code.coding.is_empty() {
            return Err("code.coding must name at least one code".into());
        }
        if let Some(subject) = self.subject.as_ref().and_then(|s| s.reference.as_deref())
            && subject != format!("Patient/{patient}")
        {
            return Err(format!("subject {subject:?} is not the transaction's patient"));
        }
        let expected = match self.loinc_code() {
            Some(LOINC_CGM_MG_DL) | Some(LOINC_BLOOD_GLUCOSE) => Some(("mg/dL", 10.0, 1000.0)),
            Some(LOINC_CGM_MMOL_L) => Some(("mmol/L", 0.5, 55.0)),
            Some(LOINC_HBA1C) => Some(("%", 2.0, 25.0)),
            _ => None,
        };
        if let Some((unit, lo, hi)) = expected {
            let q = self.value_quantity.as_ref().ok_or("a glucose or HbA1c observation needs valueQuantity")?;
            if let Some(code) = &q.code
                && code != unit
            {
                return Err(format!("valueQuantity.code must be {unit:?} for this LOINC code, got {code:?}"));
            }
            if !q.value.is_finite() || q.value < lo || q.value > hi {
                return Err(format!("value {} {unit} is outside the plausible range {lo}..={hi}", q.value));
            }
        } else if let Some(q) = &self.value_quantity
            && !q.value.is_finite()
        {
            return Err("valueQuantity.value must be a finite number".into());
        }
        Ok(())
    }
}

/// A CGM reading in mg/dL as a FHIR Observation (LOINC 99504-3), as devices
/// and the CLI produce them.
pub fn cgm_observation(patient: &str, at: Timestamp, mg_dl: f64, device_reading_id: Option<&str>) -> Observation {
    Observation {
        resource_type: "Observation".into(),
        id: None,
        identifier: device_reading_id
            .map(|v| vec![Identifier { system: Some("urn:glucochain:cgm-reading".into()), value: v.into() }])
            .unwrap_or_default(),
        status: "final".into(),
        category: vec![CodeableConcept {
            coding: vec![Coding {
                system: "http://terminology.hl7.org/CodeSystem/observation-category".into(),
                code: "laboratory".into(),
                display: None,
            }],
            text: None,
        }],
        code: CodeableConcept {
            coding: vec![Coding {
                system: LOINC.into(),
                code: LOINC_CGM_MG_DL.into(),
                display: Some("Glucose [Mass/volume] in Interstitial fluid".into()),
            }],
            text: None,
        },
        subject: Some(Reference { reference: Some(format!("Patient/{patient}")), display: None }),
        effective_date_time: at,
        issued: None,
        value_quantity: Some(Quantity {
            value: mg_dl,
            unit: Some("mg/dL".into()),
            system: Some(UCUM.into()),
            code: Some("mg/dL".into()),
        }),
        device: None,
        note: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgm_observation_validates_and_converts() {
        let o = cgm_observation("pabc", Timestamp::from_unix_ms(0), 120.0, Some("r1"));
        o.validate("pabc").unwrap();
        assert_eq!(o.glucose_mg_dl(), Some(120.0));
        assert!(o.validate("pother").unwrap_err().contains("subject"));
        let mut bad = o.clone();
        bad.value_quantity.as_mut().unwrap().value = 5000.0;
        assert!(bad.validate("pabc").unwrap_err().contains("plausible"));
        let mut mmol = o.clone();
        mmol.code.coding[0].code = LOINC_CGM_MMOL_L.into();
        mmol.value_quantity = Some(Quantity { value: 5.5, unit: None, system: None, code: Some("mmol/L".into()) });
        mmol.validate("pabc").unwrap();
        assert!((mmol.glucose_mg_dl().unwrap() - 99.1).abs() < 0.1);
    }

    #[test]
    fn unknown_elements_are_refused() {
        let mut v = serde_json::to_value(cgm_observation("pabc", Timestamp::from_unix_ms(0), 99.0, None)).unwrap();
        v["interpretation"] = serde_json::json!([]);
        let err = serde_json::from_value::<Observation>(v).unwrap_err().to_string();
        assert!(err.contains("unknown field `interpretation`"), "{err}");
    }
}
