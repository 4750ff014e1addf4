<#
.SYNOPSIS
  Installs lojad, the Loja store agent, as a Windows service.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File install.ps1 -Binary .\lojad.exe `
      -CentralUrl https://retaguarda.example.com.br -StoreId loja-0042 -StoreToken XXXX

.DESCRIPTION
  Copies lojad.exe to %ProgramFiles%\Loja, writes %ProgramData%\Loja\lojad.toml with
  `lojad init --system` when there is no config yet (the generated POS token is printed
  once), restricts the config and data dir to SYSTEM and Administrators, registers the
  service "lojad" (automatic start, restart on failure after 5 s) and starts it.
  Run again to upgrade the binary: the config is kept.
#>
param(
    [string]$Binary = ".\lojad.exe",
    [string]$CentralUrl,
    [string]$StoreId,
    [string]$StoreToken,
    [string]$PosToken
)
$ErrorActionPreference = "Stop"

$ServiceName = "lojad"
$InstallDir  = Join-Path $env:ProgramFiles "Loja"
$DataRoot    = Join-Path $env:ProgramData "Loja"
$Config      = Join-Path $DataRoot "lojad.toml"
$DataDir     = Join-Path $DataRoot "data"
$Exe         = Join-Path $InstallDir "lojad.exe"

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Write-Error "install.ps1: run from an elevated PowerShell (Administrator)"
    exit 2
}
if (-not (Test-Path $Binary)) { Write-Error "install.ps1: $Binary not found"; exit 2 }

$existing = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
if ($existing -and $existing.Status -eq "Running") { Stop-Service -Name $ServiceName -Force }

New-Item -ItemType Directory -Force -Path $InstallDir, $DataRoot, $DataDir | Out-Null
Copy-Item -Force $Binary $Exe

# Config and data: SYSTEM and Administrators only (the config holds tokens).
icacls $DataRoot /inheritance:r /grant:r "SYSTEM:(OI)(CI)F" "Administrators:(OI)(CI)F" | Out-Null

if (-not (Test-Path $Config)) {
    $initArgs = @("init", "--system", "--config", $Config, "--data-dir", $DataDir)
    if ($CentralUrl) { $initArgs += @("--central-url", $CentralUrl) }
    if ($StoreId)    { $initArgs += @("--store-id", $StoreId) }
    if ($StoreToken) { $initArgs += @("--store-token", $StoreToken) }
    if ($PosToken)   { $initArgs += @("--pos-token", $PosToken) }
    & $Exe @initArgs
    if ($LASTEXITCODE -ne 0) { Write-Error "lojad init failed ($LASTEXITCODE)"; exit $LASTEXITCODE }
}

if (-not $existing) {
    New-Service -Name $ServiceName -DisplayName "Loja store agent (lojad)" `
        -Description "Loja: replica sync, outbox delivery and POS API for this store" `
        -BinaryPathName "`"$Exe`" --config `"$Config`" service-main" `
        -StartupType Automatic | Out-Null
} else {
    sc.exe config $ServiceName binPath= "`"$Exe`" --config `"$Config`" service-main" start= auto | Out-Null
}
# Recovery: restart after 5 s on every failure; reset the failure count daily.
sc.exe failure $ServiceName reset= 86400 actions= restart/5000/restart/5000/restart/5000 | Out-Null
sc.exe failureflag $ServiceName 1 | Out-Null

Start-Service -Name $ServiceName
Write-Host "lojad installed. Check it with: & `"$Exe`" --config `"$Config`" status"
