-- product_taxes keeps what is the same in every state: the ICMS, the ST
-- retained, the FCP and PIS/COFINS moved to entities of their own
-- (icms_by_state, icms_st_retained, fcp_balance, pis_cofins), which vary
-- with the state and have their own availability minutes. Rows stored
-- before lose the moved fields, so no store is ever served a field its
-- registry no longer has. (The old single rate cannot say which state it
-- was for: the ERP imports the new entities.)
UPDATE rows
SET data = json_remove(data, '$.icms_cst', '$.icms_rate_bp', '$.icms_st_rate_bp',
                       '$.icms_retained', '$.fcp_rate_bp', '$.pis_cst', '$.pis_rate_bp',
                       '$.cofins_cst', '$.cofins_rate_bp')
WHERE entity = 'product_taxes' AND data IS NOT NULL;
