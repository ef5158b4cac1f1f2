-- Why a read was granted or denied (the contract rule's reason).
ALTER TABLE audit_log ADD COLUMN reason TEXT NOT NULL DEFAULT '';
