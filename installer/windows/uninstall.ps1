<#
.SYNOPSIS
  Removes the lojad Windows service.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File uninstall.ps1            # keeps config and data
  powershell -ExecutionPolicy Bypass -File uninstall.ps1 -PurgeData # also deletes %ProgramData%\Loja

.DESCRIPTION
  Stops the service (lojad finishes its current transaction and exits), deletes it and
  removes %ProgramFiles%\Loja. The config and data dir (replica, outbox with any
  undelivered documents, journal, logs) are kept unless -PurgeData is given.
#>
param([switch]$PurgeData)
$ErrorActionPreference = "Stop"
$ServiceName = "lojad"

$svc = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
if ($svc) {
    if ($svc.Status -ne "Stopped") { Stop-Service -Name $ServiceName -Force }
    sc.exe delete $ServiceName | Out-Null
}
Remove-Item -Recurse -Force -ErrorAction SilentlyContinue (Join-Path $env:ProgramFiles "Loja")
if ($PurgeData) {
    Write-Warning "Deleting $env:ProgramData\Loja: undelivered documents in the outbox are lost"
    Remove-Item -Recurse -Force -ErrorAction SilentlyContinue (Join-Path $env:ProgramData "Loja")
}
Write-Host "lojad service removed."
